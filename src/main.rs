fn main() -> anyhow::Result<()> {
    print!("{}", agentcore_operator::crdgen::crd_yaml()?);
    Ok(())
}
