pub fn run(_a: super::DemoArgs) -> Result<(), String> {
    Err("demo not built yet".into())
}
