//! agentcore-operator: manages Amazon Bedrock AgentCore batch evaluations as Kubernetes objects.
#![forbid(unsafe_code)]

pub mod api;
pub mod crdgen;
pub mod lifecycle;
