//! Prints the Markdown API reference generated from the CRD schema:
//! `cargo run -q -p agentcore-apidocs > docs/api-reference.md`.

fn main() -> anyhow::Result<()> {
    let crds = [
        agentcore_operator::crdgen::crd(),
        agentcore_operator::crdgen::schedule_crd(),
    ];
    print!("{}", agentcore_apidocs::render_all(&crds)?);
    Ok(())
}
