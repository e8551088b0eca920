//! The checked-in CRD (and the Helm chart's copy) must be exactly what the code generates.
//! Regenerate with: `cargo run -q -- crd > crds/evals.agentcore.dev_batchevaluations.yaml`
//! and copy it to `charts/agentcore-operator/crds/`.

use std::path::Path;

use agentcore_operator::crdgen::{CRD_PATH, SCHEDULE_CRD_PATH, crd_yaml, schedule_crd_yaml};

fn assert_same(path: &Path) {
    let generated = crd_yaml().expect("CRD serializes");
    let checked_in = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        generated == checked_in,
        "{} is stale: regenerate with `cargo run -q -- crd > {CRD_PATH}` and copy it into the chart",
        path.display()
    );
}

#[test]
fn checked_in_crd_matches_the_code() {
    assert_same(&Path::new(env!("CARGO_MANIFEST_DIR")).join(CRD_PATH));
}

#[test]
fn chart_crd_matches_the_code() {
    assert_same(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("charts/agentcore-operator/crds/evals.agentcore.dev_batchevaluations.yaml"),
    );
}

#[test]
fn crd_has_what_users_rely_on() {
    let crd = agentcore_operator::crdgen::crd();
    let version = &crd.spec.versions[0];
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some(),
        "status subresource"
    );
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    for column in ["Status", "Sessions", "Score", "Passed", "Id", "Age"] {
        assert!(
            columns.contains(&column),
            "printer column {column} in {columns:?}"
        );
    }
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["beval".to_owned(), "bevals".to_owned()][..])
    );
    let yaml = crd_yaml().expect("CRD serializes");
    for rule in [
        "has(self.cloudWatchLogs) != has(self.onlineEvaluationConfig)",
        "batchEvaluationName is immutable",
        "dataSource is immutable",
        "stop cannot be set back to false",
    ] {
        assert!(yaml.contains(rule), "CEL rule {rule:?} missing");
    }
    // Every spec field explains itself to `kubectl explain`.
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema");
    let spec = schema
        .properties
        .as_ref()
        .and_then(|p| p.get("spec"))
        .expect("spec");
    let mut missing = Vec::new();
    collect_missing_descriptions("spec", spec, &mut missing);
    assert!(
        missing.is_empty(),
        "fields without description: {missing:?}"
    );
}

fn collect_missing_descriptions(
    path: &str,
    schema: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
    missing: &mut Vec<String>,
) {
    for (name, prop) in schema.properties.iter().flatten() {
        let here = format!("{path}.{name}");
        if prop.description.as_deref().is_none_or(str::is_empty) {
            missing.push(here.clone());
        }
        collect_missing_descriptions(&here, prop, missing);
        if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(items)) = &prop.items {
            collect_missing_descriptions(&format!("{here}[]"), items, missing);
        }
    }
}

fn assert_same_schedule(path: &Path) {
    let generated = schedule_crd_yaml().expect("CRD serializes");
    let checked_in = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        generated == checked_in,
        "{} is stale: regenerate with `cargo run -q -- crd schedule > {SCHEDULE_CRD_PATH}` and copy it into the chart",
        path.display()
    );
}

#[test]
fn checked_in_schedule_crd_matches_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_same_schedule(&root.join(SCHEDULE_CRD_PATH));
    assert_same_schedule(
        &root
            .join("charts/agentcore-operator/")
            .join(SCHEDULE_CRD_PATH),
    );
}

#[test]
fn schedule_crd_has_what_users_rely_on() {
    let crd = agentcore_operator::crdgen::schedule_crd();
    assert_eq!(crd.spec.names.kind, "BatchEvaluationSchedule");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["bevalsched".to_owned(), "bevalscheds".to_owned()][..])
    );
    assert_eq!(
        crd.spec.names.categories.as_deref(),
        Some(&["agentcore".to_owned()][..])
    );
    let version = &crd.spec.versions[0];
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    for column in [
        "Schedule",
        "Suspend",
        "Active",
        "Last Schedule",
        "Last Result",
        "Passed",
        "Age",
    ] {
        assert!(
            columns.contains(&column),
            "printer column {column} missing: {columns:?}"
        );
    }
    let yaml = schedule_crd_yaml().expect("CRD serializes");
    // The template embeds the BatchEvaluation spec: its static rules stay, its transition rules
    // (immutability of a run) do not, so the template can be edited.
    assert!(yaml.contains("has(self.cloudWatchLogs) != has(self.onlineEvaluationConfig)"));
    assert!(
        !yaml.contains("oldSelf"),
        "transition rules leaked into the template"
    );
    assert!(yaml.contains("self.metadata.name.size() <= 52"));
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema");
    let spec = schema
        .properties
        .as_ref()
        .and_then(|p| p.get("spec"))
        .expect("spec");
    let mut missing = Vec::new();
    collect_missing_descriptions("spec", spec, &mut missing);
    assert!(
        missing.is_empty(),
        "fields without description: {missing:?}"
    );
}
