//! docs/api-reference.md is what the generator makes of the current CRD schemas (BatchEvaluation,
//! then BatchEvaluationSchedule).

use agentcore_apidocs as apidocs;
use agentcore_operator::crdgen;

#[test]
fn api_reference_is_up_to_date() -> anyhow::Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(apidocs::PATH);
    let generated = apidocs::render_all(&[crdgen::crd(), crdgen::schedule_crd()])?;
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    anyhow::ensure!(
        checked_in == generated,
        "{} is stale or missing; regenerate it with:\n  {}",
        apidocs::PATH,
        apidocs::REGENERATE
    );
    Ok(())
}
