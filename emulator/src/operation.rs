//! The five batch-evaluation operations the emulator serves.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// One of the five batch-evaluation operations, named as in the service model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Operation {
    StartBatchEvaluation,
    GetBatchEvaluation,
    ListBatchEvaluations,
    StopBatchEvaluation,
    DeleteBatchEvaluation,
}

impl Operation {
    /// Every operation, in the order the service model lists them.
    pub const ALL: [Operation; 5] = [
        Operation::StartBatchEvaluation,
        Operation::GetBatchEvaluation,
        Operation::ListBatchEvaluations,
        Operation::StopBatchEvaluation,
        Operation::DeleteBatchEvaluation,
    ];

    /// The operation's name in the service model.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::StartBatchEvaluation => "StartBatchEvaluation",
            Operation::GetBatchEvaluation => "GetBatchEvaluation",
            Operation::ListBatchEvaluations => "ListBatchEvaluations",
            Operation::StopBatchEvaluation => "StopBatchEvaluation",
            Operation::DeleteBatchEvaluation => "DeleteBatchEvaluation",
        }
    }

    /// Position in [`Operation::ALL`], for per-operation arrays.
    pub(crate) fn index(self) -> usize {
        match self {
            Operation::StartBatchEvaluation => 0,
            Operation::GetBatchEvaluation => 1,
            Operation::ListBatchEvaluations => 2,
            Operation::StopBatchEvaluation => 3,
            Operation::DeleteBatchEvaluation => 4,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an operation name that is none of the five.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown operation {0:?} (expected one of StartBatchEvaluation, GetBatchEvaluation, ListBatchEvaluations, StopBatchEvaluation, DeleteBatchEvaluation)"
)]
pub struct UnknownOperation(pub String);

impl FromStr for Operation {
    type Err = UnknownOperation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| UnknownOperation(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_index_matches_all() {
        for (i, op) in Operation::ALL.into_iter().enumerate() {
            assert_eq!(op.as_str().parse::<Operation>(), Ok(op));
            assert_eq!(op.index(), i);
        }
        assert!("StartBatch".parse::<Operation>().is_err());
    }
}
