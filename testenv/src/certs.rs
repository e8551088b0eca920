//! Key material for a local kube-apiserver: a throwaway CA, a serving certificate for loopback
//! signed by it, and the service-account token signing key.
//!
//! A CA (rather than a self-signed serving certificate) lets kubeconfigs verify the server
//! normally, so clients run with the same TLS settings as against a real cluster.

use std::{
    fs::OpenOptions,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::{Error, Result};

/// Names the serving certificate is valid for: loopback, plus the in-cluster names, so that a
/// client configured like a pod would be (`kubernetes.default.svc`) also verifies.
const SERVING_NAMES: &[&str] = &[
    "127.0.0.1",
    "::1",
    "localhost",
    "10.0.0.1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// Paths of the generated files, plus the CA certificate for kubeconfigs and HTTP clients.
#[derive(Debug, Clone)]
pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    pub(crate) serving_cert: PathBuf,
    pub(crate) serving_key: PathBuf,
    pub(crate) service_account_key: PathBuf,
    pub(crate) service_account_public_key: PathBuf,
    /// The API server's client identity towards kubelets (group `system:masters`), used only
    /// when a [`crate::Node`] runs.
    pub(crate) kubelet_client_cert: PathBuf,
    pub(crate) kubelet_client_key: PathBuf,
    pub(crate) ca_cert: PathBuf,
}

/// Generates everything into `dir` (created if missing). Private keys are written mode 0600.
pub(crate) fn generate(dir: &Path) -> Result<Pki> {
    std::fs::create_dir_all(dir)
        .map_err(|source| Error::io(format!("creating {}", dir.display()), source))?;

    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = common_name("agentcore-testenv CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut serving_params = CertificateParams::new(
        SERVING_NAMES
            .iter()
            .map(|&n| n.to_owned())
            .collect::<Vec<_>>(),
    )?;
    serving_params.distinguished_name = common_name("kube-apiserver");
    serving_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    serving_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    serving_params.use_authority_key_identifier_extension = true;
    let serving_key = KeyPair::generate()?;
    let serving_cert = serving_params.signed_by(&serving_key, &ca)?;

    let service_account_key = KeyPair::generate()?;

    let mut client_params = CertificateParams::default();
    client_params.distinguished_name = common_name("kube-apiserver-kubelet-client");
    client_params
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client_params.use_authority_key_identifier_extension = true;
    let client_key = KeyPair::generate()?;
    let client_cert = client_params.signed_by(&client_key, &ca)?;

    let pki = Pki {
        ca_pem: ca.pem(),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        service_account_key: dir.join("service-account.key"),
        service_account_public_key: dir.join("service-account.pub"),
        kubelet_client_cert: dir.join("kubelet-client.crt"),
        kubelet_client_key: dir.join("kubelet-client.key"),
        ca_cert: dir.join("ca.crt"),
    };
    write_file(&pki.ca_cert, &pki.ca_pem, 0o644)?;
    write_file(&pki.kubelet_client_cert, &client_cert.pem(), 0o644)?;
    write_file(&pki.kubelet_client_key, &client_key.serialize_pem(), 0o600)?;
    // The chain lets clients that were given only the serving certificate find the CA too.
    write_file(
        &pki.serving_cert,
        &format!("{}{}", serving_cert.pem(), pki.ca_pem),
        0o644,
    )?;
    write_file(&pki.serving_key, &serving_key.serialize_pem(), 0o600)?;
    write_file(
        &pki.service_account_key,
        &service_account_key.serialize_pem(),
        0o600,
    )?;
    write_file(
        &pki.service_account_public_key,
        &service_account_key.public_key_pem(),
        0o644,
    )?;
    Ok(pki)
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// Writes `contents` to a new or truncated file created with `mode`.
pub(crate) fn write_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| file.write_all(contents.as_bytes()))
        .map_err(|source| Error::io(format!("writing {}", path.display()), source))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn writes_pem_files_with_private_keys_readable_only_by_the_owner() {
        let dir = std::env::temp_dir().join(format!("testenv-certs-{}", std::process::id()));
        let pki = generate(&dir).unwrap();
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let chain = std::fs::read_to_string(&pki.serving_cert).unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(chain.ends_with(&pki.ca_pem));
        for key in [&pki.serving_key, &pki.service_account_key] {
            let text = std::fs::read_to_string(key).unwrap();
            assert!(text.contains("BEGIN PRIVATE KEY"), "{}", key.display());
            let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        let public = std::fs::read_to_string(&pki.service_account_public_key).unwrap();
        assert!(public.contains("BEGIN PUBLIC KEY"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
