//! Prints the Markdown API reference generated from the CRD schema:
//! `cargo run -q --example api-reference > docs/api-reference.md`.

fn main() -> anyhow::Result<()> {
    let crd = agentcore_operator::crdgen::crd();
    print!("{}", agentcore_operator::apidocs::render(&crd)?);
    Ok(())
}
