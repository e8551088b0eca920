//! Brings up a control plane with a real node, imports the OCI archives given as arguments
//! (e.g. from `hack/build-image.sh`) and keeps them running until Ctrl-C, then tears everything
//! down. For looking at the in-cluster variant by hand (as root):
//!
//! ```sh
//! cargo run -p agentcore-testenv --example node_up -- "$(bash hack/build-image.sh)"
//! # in another terminal, with the kubeconfig it prints:
//! helm install agentcore-operator charts/agentcore-operator -n agentcore-system --create-namespace \
//!   --set image.tag=0.1.0 --set image.pullPolicy=Never ...
//! ```

use std::path::PathBuf;

use agentcore_testenv::{ControlPlane, ControlPlaneOptions, Node};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let plane =
        ControlPlane::start(Node::control_plane_options(ControlPlaneOptions::default())?).await?;
    let node = Node::start(&plane).await?;
    for archive in std::env::args().skip(1) {
        node.import_image(&PathBuf::from(&archive)).await?;
        println!("imported {archive}");
    }
    println!(
        "node {} Ready at {}; export KUBECONFIG={}; Ctrl-C tears down",
        node.name(),
        node.ip(),
        plane.admin_kubeconfig().display()
    );
    tokio::signal::ctrl_c().await?;
    node.stop().await?;
    plane.stop().await?;
    Ok(())
}
