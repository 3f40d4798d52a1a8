//! Headless Chromium driven over WebDriver (chromedriver), and the execution page
//! served as `run` serves it: what the page's e2e tests share. Needs Debian's
//! `chromium` and `chromium-driver` (tests/cluster/build.sh installs them).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use playbook_operator::{controller, page, server};
use serde_json::json;

/// chromedriver and its Chromium, each with a fresh profile; killed when dropped.
pub struct Chrome {
    driver: Child,
    profile: PathBuf,
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// Starts chromedriver and a headless Chromium session. The flags keep Chromium off
/// the network (no update, sync or QUIC probes: without them it hangs on a machine
/// without one) and out of any earlier profile.
pub async fn chrome() -> (Chrome, Browser) {
    let port = free_port();
    let profile = std::env::temp_dir().join(format!("pbo-page-chrome-{}", super::random_suffix()));
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start chromedriver ({e}): install Debian's chromium and chromium-driver \
                 (tests/cluster/build.sh does, as root)"
            )
        });
    let chrome = Chrome {
        driver,
        profile: profile.clone(),
    };
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--window-size=1100,900",
            format!("--user-data-dir={}", profile.display()),
        ]}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(browser) => return (chrome, browser),
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no Chromium session from chromedriver within 30 s: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The page as `run` serves it (all namespaces), on a free port; its address.
pub async fn serve_page() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = server::bind("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("binding the page's port");
    let addr = listener.local_addr().expect("the bound address");
    let (routes, task) = page::start(
        super::client().await,
        super::config().await,
        page::Config {
            namespace: None,
            external_url: Some(format!("http://{addr}")),
            log_limit_bytes: page::DEFAULT_LOG_LIMIT_BYTES,
            // Chromium on http://127.0.0.1 gets plain-http cookies.
            plain_http: true,
            sessions: page::session::Limits::default(),
        },
    );
    let handle = tokio::spawn(async move {
        let serve = server::serve(listener, routes, futures::future::pending());
        let _ = futures::join!(serve, task);
    });
    (addr, handle)
}

/// Whether a WebDriver error says the element was replaced since it was found.
pub fn is_stale(e: &fantoccini::error::CmdError) -> bool {
    matches!(e, fantoccini::error::CmdError::Standard(w)
        if w.error == fantoccini::error::ErrorStatus::StaleElementReference)
}

/// The text of `css`. The live refresh swaps the run's fragment every 2 s, so an
/// element found just before a swap can be stale when read: then it is found again.
pub async fn text_of(b: &Browser, css: &str) -> String {
    for _ in 0..5 {
        match find(b, css).await.text().await {
            Ok(text) => return text,
            Err(e) if is_stale(&e) => continue,
            Err(e) => panic!("the text of {css}: {e}"),
        }
    }
    panic!("{css} kept going stale");
}

/// Clicks `css`, finding it again if the live refresh replaced it meanwhile.
pub async fn click(b: &Browser, css: &str) {
    for _ in 0..5 {
        match find(b, css).await.click().await {
            Ok(()) => return,
            Err(e) if is_stale(&e) => continue,
            Err(e) => panic!("clicking {css}: {e}"),
        }
    }
    panic!("{css} kept going stale");
}

pub async fn find(b: &Browser, css: &str) -> fantoccini::elements::Element {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
}

pub async fn source(b: &Browser) -> String {
    b.source().await.expect("the page source")
}

/// Writes a screenshot to target/screenshots, and with UPDATE_SCREENSHOTS=1 to
/// docs/screenshots (committed, shown in the README): every run takes them, but only
/// a deliberate update changes the committed ones (names and times differ per run).
pub async fn screenshot(b: &Browser, name: &str) {
    let png = b.screenshot().await.expect("a screenshot");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("target/screenshots")];
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        dirs.push(root.join("docs/screenshots"));
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir).expect("creating the screenshot directory");
        std::fs::write(dir.join(name), &png).expect("writing the screenshot");
    }
}

/// Signs in on the sign-in page the browser shows now.
pub async fn sign_in(b: &Browser, token: &str) {
    let field = b
        .wait()
        .for_element(Locator::Css("#token"))
        .await
        .expect("the sign-in form");
    field.send_keys(token).await.expect("typing the token");
    click(b, "#signin button").await;
}

/// The controller of `ns`, with the page's address as `--external-url`.
pub fn controller_for(ns: &super::TestNamespace, page: SocketAddr) -> tokio::task::JoinHandle<()> {
    let config = controller::Config {
        namespace: Some(ns.name.clone()),
        external_url: Some(format!("http://{page}")),
        ..controller::Config::default()
    };
    tokio::spawn(controller::run(
        ns.client.clone(),
        config,
        futures::future::pending(),
    ))
}
