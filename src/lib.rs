//! agentcore-operator: manages Amazon Bedrock AgentCore batch evaluations as Kubernetes objects.
//!
//! Shared parts: [`api`] (the custom resource types), [`aws`] (the AgentCore client), [`remote`]
//! (what is known of a remote job), [`metrics`], [`telemetry`], [`controller`] (running the
//! controllers: leader election, health, shutdown), [`crdgen`]. Each kind has its module:
//! [`batch_evaluation`], [`schedule`] (`BatchEvaluationSchedule`, the CronJob of evaluations).
#![forbid(unsafe_code)]

pub mod api;
pub mod aws;
pub mod batch_evaluation;
pub mod controller;
pub mod crdgen;
pub mod error;
pub mod metrics;
pub mod remote;
pub mod schedule;
pub mod telemetry;
pub mod tenancy;
