//! A store's device identity: a UUID and an Ed25519 key pair (ring).
//!
//! The private key lives in `DIR/device.key` (PKCS#8, mode 0600); the device
//! id, name and public key are also in the `meta` table.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use uuid::Uuid;

use super::StoreError;

/// File name of the private key inside a store directory.
pub const KEY_FILE: &str = "device.key";

/// This device: its id, name and signing key.
#[derive(Debug)]
pub struct Identity {
    /// Device id (the automerge actor id of its changes, followed by the
    /// actor epoch after a restore: see [`super::restore`]).
    pub device_id: Uuid,
    /// Human name, e.g. `gogui-phone-1`.
    pub name: String,
    key: Ed25519KeyPair,
}

impl Identity {
    /// Creates a new key pair and writes it to `dir/device.key` with mode 0600.
    pub(crate) fn create(dir: &Path, name: &str) -> Result<Identity, StoreError> {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| StoreError::Crypto("key generation failed".into()))?;
        let path = dir.join(KEY_FILE);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        f.write_all(pkcs8.as_ref())
            .map_err(|e| StoreError::io(&path, e))?;
        f.sync_all().map_err(|e| StoreError::io(&path, e))?;
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|e| StoreError::Crypto(format!("new key unreadable: {e}")))?;
        Ok(Identity {
            device_id: Uuid::now_v7(),
            name: name.to_string(),
            key,
        })
    }

    /// Loads the key of an existing store.
    pub(crate) fn load(dir: &Path, device_id: Uuid, name: String) -> Result<Identity, StoreError> {
        let path = dir.join(KEY_FILE);
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StoreError::Crypto(format!(
                    "the key file {} is missing; every command opens the store with it \
                     (it signs this device's changes): put the store's own device.key back \
                     from its backup; without it, make a new store with `fmp init` and join again",
                    path.display()
                ))
            } else {
                StoreError::io(&path, e)
            }
        })?;
        let key = Ed25519KeyPair::from_pkcs8(&bytes).map_err(|e| {
            StoreError::Crypto(format!(
                "{} is not an Ed25519 PKCS#8 key: {e}",
                path.display()
            ))
        })?;
        Ok(Identity {
            device_id,
            name,
            key,
        })
    }

    /// The public key (32 bytes).
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// Signs a message with the device key.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.key.sign(msg).as_ref().to_vec()
    }
}

/// Verifies an Ed25519 signature by a public key.
pub fn verify(public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(msg, sig)
        .is_ok()
}
