//! agentcore-operator: manages Amazon Bedrock AgentCore batch evaluations as Kubernetes objects.
#![forbid(unsafe_code)]

pub mod api;
pub mod apidocs;
pub mod aws;
pub mod controller;
pub mod crdgen;
pub mod error;
pub mod lifecycle;
pub mod metrics;
pub mod naming;
pub mod reconciler;
pub mod status;
pub mod telemetry;
