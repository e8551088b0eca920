//! Logging. Levels come from `RUST_LOG`; the default keeps the AWS SDK and kube quiet, so
//! request details (which may include signed headers) never reach the log at the default level.

use std::io::IsTerminal;

use tracing_subscriber::{
    EnvFilter, filter::filter_fn, fmt, layer::SubscriberExt, util::SubscriberInitExt,
};

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

const DEFAULT_FILTER: &str = "info,aws_config=warn,aws_smithy_runtime=warn,aws_sdk_bedrockagentcore=warn,kube_lease_manager=warn,hyper=warn";

/// AWS SDK targets whose debug lines print the signing identity: endpoint resolution dumps its
/// parameters with the identity in them (the SDK redacts the secret key, not the access key id),
/// and the AssumeRole provider logs the access key id of every set of credentials it obtains for a
/// namespace's role.
const IDENTITY_AT_DEBUG: [&str; 3] = [
    "aws_smithy_runtime::client::orchestrator::endpoints",
    "aws_smithy_runtime::client::orchestrator::auth",
    "aws_config::sts",
];

/// Whatever `RUST_LOG` says, credentials never reach the log: the AWS SDK's trace lines (runtime
/// components, resolved identities, signing parameters) and the debug lines above are dropped.
/// Found by the fault suite's secret scan (tests/faults.rs), which runs the operator at debug
/// and trace level with fake credentials.
fn credential_safe(meta: &tracing::Metadata<'_>) -> bool {
    let target = meta.target();
    match *meta.level() {
        tracing::Level::TRACE => !target.starts_with("aws_"),
        tracing::Level::DEBUG => !IDENTITY_AT_DEBUG.iter().any(|t| target.starts_with(t)),
        _ => true,
    }
}

/// Installs the global subscriber.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(filter_fn(credential_safe));
    match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .init(),
        // Colours only on a terminal: piped logs (files, kubectl logs) stay plain text.
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_target(false)
                    .with_ansi(std::io::stdout().is_terminal()),
            )
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use tracing::{
        Level, Metadata,
        callsite::{Callsite, Identifier},
        field::FieldSet,
        metadata::Kind,
        subscriber::Interest,
    };

    /// Only its identity is needed to build metadata by hand.
    struct Site;
    impl Callsite for Site {
        fn set_interest(&self, _: Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!("not registered")
        }
    }
    static SITE: Site = Site;

    fn safe(target: &'static str, level: Level) -> bool {
        let fields = FieldSet::new(&[], Identifier(&SITE));
        let meta = Metadata::new(
            "event",
            target,
            level,
            None,
            None,
            None,
            fields,
            Kind::EVENT,
        );
        super::credential_safe(&meta)
    }

    #[test]
    fn the_sdk_never_logs_the_identity() {
        let endpoints = "aws_smithy_runtime::client::orchestrator::endpoints";
        assert!(!safe(endpoints, Level::DEBUG));
        assert!(!safe("aws_sigv4::http_request::sign", Level::TRACE));
        assert!(!safe(
            "aws_smithy_runtime::client::orchestrator",
            Level::TRACE
        ));
        assert!(safe(
            "aws_smithy_runtime::client::orchestrator",
            Level::DEBUG
        ));
        assert!(safe(endpoints, Level::WARN));
        assert!(!safe("aws_config::sts::assume_role", Level::DEBUG));
        assert!(safe("agentcore_operator::reconciler", Level::TRACE));
    }
}
