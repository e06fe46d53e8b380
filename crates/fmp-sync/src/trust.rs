//! Who may write what: the caller's [`Trust`] and device certificates.
//!
//! Trust model. Each device signs its own changes (in bundles) with its
//! Ed25519 key. A receiver learns an author's public key and FMP scope:
//! 1. from its [`Trust`] (the hub's enrollment table, HQ's configuration);
//! 2. else from a [`Certificate`] issued by a device its `Trust` knows with
//!    `may_enroll` (a supervisor's hub), whose scope the certificate's cannot
//!    exceed. Certificates travel with the data and are stored in the
//!    `devices` table, so HQ can verify a phone it never met through the hub
//!    that enrolled it. There are no chains: the issuer itself must be in
//!    the receiver's `Trust`;
//! 3. else, only where `require_known()` is false (phone ↔ phone on a local
//!    network, tests), from a self-signed certificate, pinned on first use.
//!
//! Without a key the author's bundles are refused, alone: the rest of the
//! message is judged as usual (see `apply::verify`).
//!
//! Registry and form documents are accepted only from one key: HQ's, as
//! [`Trust::authority`] names it, else as the store pinned it at join, else
//! the store's own (it is HQ, or standalone). A hub with no FMP restriction
//! is still not HQ.
//!
//! Roles. Beside its scope an author has a [`Role`] (enumerator's phone,
//! supervisor's hub, HQ), signed into its certificate by the issuer, who
//! cannot grant more than its own. Certificates issued before roles (signed
//! without one, `role: None`) still verify and get the role today's rights
//! gave them: a certificate with FMPs was a phone's (enumerator), one with
//! none a hub vouching for the hub it joined (supervisor). A device in the
//! receiver's own table gets the role of that table (`may_enroll`:
//! supervisor, else enumerator); the hub a store joined is a supervisor
//! with no FMP restriction (it may be HQ: the rights are the same).

use fmp_core::store::ops::*;
use std::collections::HashMap;

pub use fmp_core::role::Role;
use fmp_core::store::{Authority, Identity, Reader, Store, Writer};

use crate::error::SyncError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a receiver knows of an author device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorInfo {
    /// Ed25519 public key (32 bytes).
    pub public_key: Vec<u8>,
    /// FMP codes whose submissions it may write; `None`: any (hubs, HQ).
    pub fmps: Option<Vec<String>>,
    /// May issue certificates for other devices (a supervisor's hub).
    pub may_enroll: bool,
    /// What it is, and so what it may do to submissions (see [`Role`]).
    pub role: Role,
}

impl AuthorInfo {
    /// True if the author may write submissions of this FMP.
    pub fn may_write(&self, fmp: &str) -> bool {
        match &self.fmps {
            None => true,
            Some(list) => list.iter().any(|f| f == fmp),
        }
    }
}

/// The caller's knowledge of devices (enrollment table, configuration).
pub trait Trust {
    /// The key and scope of a device, if known.
    fn author(&self, device: Uuid) -> Option<AuthorInfo>;
    /// If true, bundles by devices neither known here nor certified by a
    /// known issuer refuse their message; if false, self-signed
    /// certificates are accepted (trust on first use).
    fn require_known(&self) -> bool;
    /// Why a device is refused whatever certificate comes for it (revoked
    /// here), if it is.
    fn why_unknown(&self, _device: Uuid) -> Option<String> {
        None
    }
    /// The only device whose registry and form changes are accepted (HQ),
    /// with its key; `None`: the receiving store's own rule (the HQ it
    /// pinned at join, or itself if it has none).
    fn authority(&self) -> Option<Authority> {
        None
    }
}

/// A fixed table of devices: tests, the CLI, a hub's enrollment list loaded in memory.
#[derive(Debug, Clone, Default)]
pub struct StaticTrust {
    authors: HashMap<Uuid, AuthorInfo>,
    refused: HashMap<Uuid, String>,
    require_known: bool,
    authority: Option<Authority>,
}

impl StaticTrust {
    /// An empty table; `require_known` as in [`Trust::require_known`].
    pub fn new(require_known: bool) -> StaticTrust {
        StaticTrust {
            authors: HashMap::new(),
            refused: HashMap::new(),
            require_known,
            authority: None,
        }
    }

    /// Names HQ (see [`Trust::authority`]), builder style.
    pub fn with_authority(mut self, device: Uuid, public_key: &[u8]) -> StaticTrust {
        self.authority = Some(Authority {
            device_id: device,
            public_key: public_key.to_vec(),
        });
        self
    }

    /// Adds or replaces a device.
    pub fn insert(&mut self, device: Uuid, info: AuthorInfo) {
        self.authors.insert(device, info);
    }

    /// Refuses a device whatever certificate comes for it (revoked), with why.
    pub fn refuse(&mut self, device: Uuid, why: impl Into<String>) {
        self.authors.remove(&device);
        self.refused.insert(device, why.into());
    }

    /// Adds a device, builder style.
    pub fn with(mut self, device: Uuid, info: AuthorInfo) -> StaticTrust {
        self.insert(device, info);
        self
    }
}

impl Trust for StaticTrust {
    fn author(&self, device: Uuid) -> Option<AuthorInfo> {
        self.authors.get(&device).cloned()
    }

    fn require_known(&self) -> bool {
        self.require_known
    }

    fn why_unknown(&self, device: Uuid) -> Option<String> {
        self.refused.get(&device).cloned()
    }

    fn authority(&self) -> Option<Authority> {
        self.authority.clone()
    }
}

const CERT_DOMAIN: &[u8] = b"fmp-sync certificate v1\0";
const CERT_DOMAIN_V2: &[u8] = b"fmp-sync certificate v2\0";

/// A device's public key and scope, signed by an issuer (or by itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The certified device.
    pub device: Uuid,
    /// Its Ed25519 public key.
    pub public_key: Vec<u8>,
    /// The FMPs it may write (`None`: any).
    pub fmps: Option<Vec<String>>,
    /// The signing device (`== device` for a self-signed certificate).
    pub issuer: Uuid,
    /// Ed25519 signature by the issuer over [`Certificate::payload`].
    pub sig: Vec<u8>,
    /// The role granted, signed with the rest; `None`: a certificate issued
    /// before roles existed (see [`Certificate::role`]).
    pub role: Option<Role>,
}

/// A certificate as stored before roles existed (postcard is not
/// self-describing: stores of that format hold this shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyCertificate {
    /// The certified device.
    pub device: Uuid,
    /// Its Ed25519 public key.
    pub public_key: Vec<u8>,
    /// The FMPs it may write (`None`: any).
    pub fmps: Option<Vec<String>>,
    /// The signing device.
    pub issuer: Uuid,
    /// Ed25519 signature over the payload of the time (no role).
    pub sig: Vec<u8>,
}

impl From<LegacyCertificate> for Certificate {
    fn from(c: LegacyCertificate) -> Certificate {
        Certificate {
            device: c.device,
            public_key: c.public_key,
            fmps: c.fmps,
            issuer: c.issuer,
            sig: c.sig,
            role: None,
        }
    }
}

impl Certificate {
    /// The signed bytes: a domain tag, then the fields in postcard (the
    /// role too, under a second tag; a certificate without one is checked
    /// against the bytes signed before roles existed).
    pub fn payload(&self) -> Vec<u8> {
        // Encoding plain fields cannot fail; an empty body would only make
        // every signature check fail, never pass.
        match self.role {
            None => {
                let fields = (&self.device, &self.public_key, &self.fmps, &self.issuer);
                let mut out = CERT_DOMAIN.to_vec();
                out.extend(postcard::to_stdvec(&fields).unwrap_or_default());
                out
            }
            Some(role) => {
                let fields = (
                    &self.device,
                    &self.public_key,
                    &self.fmps,
                    &self.issuer,
                    role,
                );
                let mut out = CERT_DOMAIN_V2.to_vec();
                out.extend(postcard::to_stdvec(&fields).unwrap_or_default());
                out
            }
        }
    }

    /// A certificate issued by `issuer` (a hub enrolling a phone), granting `role`.
    pub fn issue(
        issuer: &Identity,
        device: Uuid,
        public_key: &[u8],
        fmps: Option<Vec<String>>,
        role: Role,
    ) -> Certificate {
        let mut c = Certificate {
            device,
            public_key: public_key.to_vec(),
            fmps,
            issuer: issuer.device_id,
            sig: Vec::new(),
            role: Some(role),
        };
        c.sig = issuer.sign(&c.payload());
        c
    }

    /// A device's own certificate, with no scope claim (trusted on first
    /// use only where enrolled devices are not required).
    pub fn self_signed(identity: &Identity) -> Certificate {
        Certificate::issue(
            identity,
            identity.device_id,
            identity.public_key(),
            None,
            Role::Hq,
        )
    }

    /// The role it grants: the signed one, or for a certificate issued
    /// before roles the one today's rights gave it (FMPs: an enumerator's
    /// phone; none: a supervisor's hub).
    pub fn role(&self) -> Role {
        match (self.role, &self.fmps) {
            (Some(r), _) => r,
            (None, Some(_)) => Role::Enumerator,
            (None, None) => Role::Supervisor,
        }
    }

    /// The stored (and sent) form: postcard of the fields.
    pub fn encode(&self) -> Vec<u8> {
        // Plain fields: encoding cannot fail; empty bytes decode to nothing.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Decodes a certificate as stored: today's form, else the form
    /// written before roles existed.
    pub fn decode_stored(bytes: &[u8]) -> Option<Certificate> {
        postcard::from_bytes::<Certificate>(bytes).ok().or_else(|| {
            postcard::from_bytes::<LegacyCertificate>(bytes)
                .ok()
                .map(Certificate::from)
        })
    }

    /// True if the issuer is the device itself.
    pub fn is_self_signed(&self) -> bool {
        self.issuer == self.device
    }

    /// Checks the certificate against `trust`; the author's info if valid.
    pub fn verify(&self, trust: &dyn Trust) -> Result<AuthorInfo, String> {
        if self.is_self_signed() {
            if trust.require_known() {
                return Err("self-signed, and this replica requires enrolled devices".into());
            }
            if !fmp_core::store::identity::verify(&self.public_key, &self.payload(), &self.sig) {
                return Err("bad self-signature".into());
            }
        } else {
            let Some(issuer) = trust.author(self.issuer) else {
                return Err(format!("issuer {} is not known here", self.issuer));
            };
            if !issuer.may_enroll {
                return Err(format!("issuer {} may not enroll devices", self.issuer));
            }
            if self.role() > issuer.role {
                return Err(format!(
                    "grants the role {}, beyond its issuer's ({})",
                    self.role(),
                    issuer.role
                ));
            }
            if !fmp_core::store::identity::verify(&issuer.public_key, &self.payload(), &self.sig) {
                return Err(format!("bad signature by issuer {}", self.issuer));
            }
            if let Some(scope) = &issuer.fmps {
                let within = match &self.fmps {
                    None => false,
                    Some(list) => list.iter().all(|f| scope.contains(f)),
                };
                if !within {
                    return Err(format!(
                        "grants FMPs beyond its issuer's ({})",
                        scope.join(", ")
                    ));
                }
            }
        }
        Ok(AuthorInfo {
            public_key: self.public_key.clone(),
            fmps: self.fmps.clone(),
            may_enroll: false,
            role: self.role(),
        })
    }
}

/// Keeps a certificate in the store's `devices` table: a phone keeps the
/// one its hub issued it, and it travels with the phone's bundles. An
/// issued certificate replaces a self-signed one, never the reverse.
pub fn store_certificate(store: &Store, cert: &Certificate) -> Result<(), SyncError> {
    store.transaction(|w| keep_certificate(w, cert))
}

/// The certificate stored for a device, if any.
pub fn stored_certificate(store: &Store, device: Uuid) -> Result<Option<Certificate>, SyncError> {
    store.snapshot(|r| certificate_of(r, device))
}

/// The certificate stored for a device, read in a snapshot or transaction
/// (one that does not decode is none).
pub(crate) fn certificate_of(
    r: &Reader<'_>,
    device: Uuid,
) -> Result<Option<Certificate>, SyncError> {
    Ok(r.certificate(device)?
        .and_then(|b| Certificate::decode_stored(&b)))
}

/// Stores a verified certificate inside a transaction; an issued one
/// replaces a self-signed one, never the reverse (a self-signed key, once
/// pinned, stays).
pub(crate) fn keep_certificate(w: &Writer<'_>, cert: &Certificate) -> Result<(), SyncError> {
    let existing = certificate_of(w, cert.device)?;
    let replace = match &existing {
        None => true,
        // A certificate signed with a role replaces the same issuer's from
        // before roles (a hub vouching again for the hub it joined).
        Some(old) => {
            old != cert
                && !cert.is_self_signed()
                && (old.is_self_signed()
                    || (old.role.is_none() && cert.role.is_some() && old.issuer == cert.issuer))
        }
    };
    if replace {
        let blob = postcard::to_stdvec(cert).map_err(|e| SyncError::Encode(e.to_string()))?;
        w.put_certificate(cert.device, &blob)?;
    }
    Ok(())
}
