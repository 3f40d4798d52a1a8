//! The pure core: everything between reading a resource and writing one.
//!
//! Nothing here holds a client, a runtime or a socket (a test keeps it so): the
//! controller observes the cluster, calls these functions, and applies their result.

pub mod access;
pub mod alert;
pub mod context;
pub mod convert;
pub mod dryrun;
pub mod history;
pub mod job;
pub mod ledger;
pub mod limits;
pub mod lint;
pub mod message;
pub mod notify;
pub mod page;
pub mod parse;
pub mod plan;
pub mod report;
pub mod schedule;
pub mod slim;
pub mod template;
pub mod wake;
pub mod workload;
