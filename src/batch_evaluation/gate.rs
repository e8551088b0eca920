//! The quality gate: whether a job's results meet the object's `spec.passCriteria`. Pure, and
//! computed from what the status already records, so a change of the criteria is judged again
//! without any AWS call.

use std::fmt::Write as _;

use crate::{
    api::{EvaluationResults, PassCriteria},
    batch_evaluation::reason::Reason,
    remote::RemoteStatus,
};

/// The `Passed` condition's verdict.
#[derive(Clone, Debug, PartialEq)]
pub enum Gate {
    /// The job has not ended yet: `Passed=Unknown`.
    AwaitingResults,
    /// Every criterion holds: `Passed=True`.
    Met,
    /// Criteria missed, each described with its figure and threshold: `Passed=False`.
    Missed(Vec<String>),
    /// The job ended without complete results (FAILED or STOPPED): `Passed=False`.
    NotCompleted(RemoteStatus),
}

impl Gate {
    /// The condition's `status`: `True`, `False` or `Unknown`.
    #[must_use]
    pub const fn status(&self) -> &'static str {
        match self {
            Self::AwaitingResults => "Unknown",
            Self::Met => "True",
            Self::Missed(_) | Self::NotCompleted(_) => "False",
        }
    }

    #[must_use]
    pub const fn reason(&self) -> Reason {
        match self {
            Self::AwaitingResults => Reason::AwaitingResults,
            Self::Met => Reason::CriteriaMet,
            Self::Missed(_) => Reason::CriteriaMissed,
            Self::NotCompleted(_) => Reason::NotCompleted,
        }
    }

    /// The condition's message: what was checked, or each missed criterion.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            Self::AwaitingResults => {
                "the job has not finished; criteria are checked when it does".to_owned()
            }
            Self::Met => "every pass criterion is met".to_owned(),
            Self::Missed(misses) => format!("missed: {}", misses.join("; ")),
            Self::NotCompleted(status) => {
                format!("the job ended {status} without complete results")
            }
        }
    }
}

/// Judges the job recorded in status (its remote status and results) against `criteria`.
#[must_use]
pub fn judge(
    criteria: &PassCriteria,
    remote: Option<&RemoteStatus>,
    results: Option<&EvaluationResults>,
) -> Gate {
    match remote {
        Some(RemoteStatus::Completed | RemoteStatus::CompletedWithErrors) => {}
        Some(status @ (RemoteStatus::Failed | RemoteStatus::Stopped)) => {
            return Gate::NotCompleted(status.clone());
        }
        _ => return Gate::AwaitingResults,
    }
    let mut misses = Vec::new();
    for criterion in &criteria.evaluators {
        let scores: Vec<_> = results
            .iter()
            .flat_map(|r| &r.evaluators)
            .filter(|e| e.evaluator_id.as_deref() == Some(criterion.evaluator_id.as_str()))
            .filter_map(|e| e.average_score.map(|score| (e.dimension.as_deref(), score)))
            .collect();
        if scores.is_empty() && criteria.require_all_evaluators {
            misses.push(format!("{} reported no score", criterion.evaluator_id));
        }
        for (dimension, score) in scores {
            if score < criterion.min_average_score {
                let mut miss = criterion.evaluator_id.clone();
                if let Some(dimension) = dimension {
                    let _ = write!(miss, " ({dimension})");
                }
                let _ = write!(
                    miss,
                    " average score {} < minimum {}",
                    figure(score),
                    figure(criterion.min_average_score)
                );
                misses.push(miss);
            }
        }
    }
    if let Some(max) = criteria.max_failed_sessions_ratio {
        let total = results.and_then(|r| r.total_sessions).unwrap_or(0);
        let failed = results.and_then(|r| r.sessions_failed).unwrap_or(0);
        if total > 0 {
            let ratio = f64::from(failed) / f64::from(total);
            if ratio > max {
                misses.push(format!(
                    "failed sessions {failed}/{total} = {} > maximum {}",
                    figure(ratio),
                    figure(max)
                ));
            }
        }
    }
    if misses.is_empty() {
        Gate::Met
    } else {
        Gate::Missed(misses)
    }
}

/// A score or ratio as people read it: at most three decimals, no trailing zeros.
fn figure(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{EvaluatorCriterion, EvaluatorResult};

    fn criteria(min: &[(&str, f64)], max_failed: Option<f64>, require_all: bool) -> PassCriteria {
        PassCriteria {
            evaluators: min
                .iter()
                .map(|(id, score)| EvaluatorCriterion {
                    evaluator_id: (*id).to_owned(),
                    min_average_score: *score,
                })
                .collect(),
            max_failed_sessions_ratio: max_failed,
            require_all_evaluators: require_all,
        }
    }

    fn results(scores: &[(&str, Option<&str>, f64)], total: i32, failed: i32) -> EvaluationResults {
        EvaluationResults {
            total_sessions: Some(total),
            sessions_completed: Some(total - failed),
            sessions_failed: Some(failed),
            evaluators: scores
                .iter()
                .map(|(id, dimension, score)| EvaluatorResult {
                    evaluator_id: Some((*id).to_owned()),
                    dimension: dimension.map(ToOwned::to_owned),
                    average_score: Some(*score),
                    ..EvaluatorResult::default()
                })
                .collect(),
            ..EvaluationResults::default()
        }
    }

    /// (case, criteria, remote status, results, expected verdict)
    type Case<'a> = (
        &'a str,
        PassCriteria,
        Option<RemoteStatus>,
        Option<&'a EvaluationResults>,
        Gate,
    );

    const HELP: &str = "Builtin.Helpfulness";
    const CORRECT: &str = "Builtin.Correctness";

    #[test]
    fn judgement_table() {
        use RemoteStatus::{
            Completed, CompletedWithErrors, Deleting, Failed, InProgress, Pending, Stopped,
            Stopping,
        };
        let both = results(&[(HELP, None, 0.8), (CORRECT, None, 0.6)], 10, 0);
        let two_failed = results(&[(HELP, None, 0.8)], 10, 2);
        let dimensions = results(
            &[(HELP, Some("tone"), 0.9), (HELP, Some("facts"), 0.5)],
            4,
            0,
        );
        let no_sessions = results(&[], 0, 0);
        let missed = |text: &[&str]| Gate::Missed(text.iter().map(|s| (*s).to_owned()).collect());
        #[rustfmt::skip]
        let table: Vec<Case<'_>> = vec![
            ("not started", criteria(&[(HELP, 0.7)], None, false), None, None, Gate::AwaitingResults),
            ("pending", criteria(&[(HELP, 0.7)], None, false), Some(Pending), None, Gate::AwaitingResults),
            ("running, scores so far are not judged", criteria(&[(HELP, 0.9)], None, false), Some(InProgress), Some(&both), Gate::AwaitingResults),
            ("stopping", criteria(&[(HELP, 0.7)], None, false), Some(Stopping), Some(&both), Gate::AwaitingResults),
            ("deleting outside the operator", criteria(&[(HELP, 0.7)], None, false), Some(Deleting), Some(&both), Gate::AwaitingResults),
            ("failed job", criteria(&[(HELP, 0.7)], None, false), Some(Failed), None, Gate::NotCompleted(Failed)),
            ("stopped job, even with good partial scores", criteria(&[(HELP, 0.1)], None, false), Some(Stopped), Some(&both), Gate::NotCompleted(Stopped)),
            ("met", criteria(&[(HELP, 0.7), (CORRECT, 0.6)], None, false), Some(Completed), Some(&both), Gate::Met),
            ("the minimum is inclusive", criteria(&[(CORRECT, 0.6)], None, false), Some(Completed), Some(&both), Gate::Met),
            ("one missed, named with score and minimum", criteria(&[(HELP, 0.7), (CORRECT, 0.75)], None, false), Some(Completed), Some(&both),
                missed(&["Builtin.Correctness average score 0.6 < minimum 0.75"])),
            ("both missed, in the criteria's order", criteria(&[(HELP, 0.85), (CORRECT, 0.65)], None, false), Some(CompletedWithErrors), Some(&both),
                missed(&["Builtin.Helpfulness average score 0.8 < minimum 0.85", "Builtin.Correctness average score 0.6 < minimum 0.65"])),
            ("every dimension must reach the minimum", criteria(&[(HELP, 0.7)], None, false), Some(Completed), Some(&dimensions),
                missed(&["Builtin.Helpfulness (facts) average score 0.5 < minimum 0.7"])),
            ("an evaluator without a score is not checked by default", criteria(&[("Custom.x-0123456789", 0.9)], None, false), Some(Completed), Some(&both), Gate::Met),
            ("unless every evaluator is required", criteria(&[("Custom.x-0123456789", 0.9)], None, true), Some(Completed), Some(&both),
                missed(&["Custom.x-0123456789 reported no score"])),
            ("no results at all, required", criteria(&[(HELP, 0.5)], None, true), Some(Completed), None,
                missed(&["Builtin.Helpfulness reported no score"])),
            ("failed share within the maximum", criteria(&[], Some(0.2), false), Some(CompletedWithErrors), Some(&two_failed), Gate::Met),
            ("failed share above the maximum", criteria(&[], Some(0.1), false), Some(CompletedWithErrors), Some(&two_failed),
                missed(&["failed sessions 2/10 = 0.2 > maximum 0.1"])),
            ("no sessions: no share to exceed", criteria(&[], Some(0.0), false), Some(Completed), Some(&no_sessions), Gate::Met),
            ("score and share both missed", criteria(&[(HELP, 0.9)], Some(0.0), false), Some(CompletedWithErrors), Some(&two_failed),
                missed(&["Builtin.Helpfulness average score 0.8 < minimum 0.9", "failed sessions 2/10 = 0.2 > maximum 0"])),
            ("empty criteria pass a completed job", PassCriteria::default(), Some(Completed), None, Gate::Met),
        ];
        for (case, criteria, remote, results, expected) in table {
            assert_eq!(
                judge(&criteria, remote.as_ref(), results),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn the_condition_reads_as_kubectl_wait_needs() {
        assert_eq!(Gate::Met.status(), "True");
        assert_eq!(Gate::AwaitingResults.status(), "Unknown");
        assert_eq!(Gate::Missed(vec!["x".into()]).status(), "False");
        assert_eq!(Gate::NotCompleted(RemoteStatus::Failed).status(), "False");
        assert_eq!(
            Gate::Missed(vec!["a".into(), "b".into()]).message(),
            "missed: a; b"
        );
        assert_eq!(
            Gate::NotCompleted(RemoteStatus::Stopped).message(),
            "the job ended STOPPED without complete results"
        );
    }

    #[test]
    fn figures_are_short() {
        assert_eq!(figure(0.7), "0.7");
        assert_eq!(figure(0.0), "0");
        assert_eq!(figure(1.0), "1");
        assert_eq!(figure(0.333_333), "0.333");
    }
}
