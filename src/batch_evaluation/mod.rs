//! The `BatchEvaluation` kind: one remote batch evaluation job per object.
//!
//! - [`lifecycle`]: the pure decision, from the object and what AWS said, to the next step;
//! - [`reason`]: every reason the kind writes, typed;
//! - [`status`]: the status, computed from what a reconcile learned;
//! - [`gate`]: the quality gate, the results judged against `spec.passCriteria`;
//! - [`snapshot`], [`admission`], [`drive`], [`outcome`]: the stages of one reconcile, which
//!   [`reconciler`] chains and applies;
//! - [`queue`]: the start queue's order and admission, decided purely;
//! - [`adoption`]: one object per adopted job;
//! - [`cached`]: what the controller's cache keeps of each object;
//! - [`controller`]: the watch and the kube-runtime controller;
//! - [`naming`]: the remote job's name and client token.

pub mod admission;
pub mod adoption;
pub mod cached;
pub mod controller;
pub mod drive;
pub mod gate;
pub mod lifecycle;
pub mod naming;
pub mod outcome;
pub mod queue;
pub mod reason;
pub mod reconciler;
pub mod snapshot;
pub mod status;
