//! Prints the Markdown API reference generated from the CRD schema:
//! `cargo run -q -p agentcore-apidocs > docs/api-reference.md`.

fn main() -> anyhow::Result<()> {
    let crd = agentcore_operator::crdgen::crd();
    print!("{}", agentcore_apidocs::render(&crd)?);
    Ok(())
}
