fn main() {
    for crd in playbook_operator::api::crds() {
        println!("---\n{}", serde_yaml::to_string(&crd).unwrap());
    }
}
