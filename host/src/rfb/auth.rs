//! VNC authentication: DES-encrypt the server's 16-byte challenge with the
//! password as key, each key byte bit-reversed (a quirk of the original
//! implementation every server expects).

use des::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use des::Des;

pub fn vnc_auth_response(password: &str, challenge: &[u8; 16]) -> [u8; 16] {
    let mut key = [0u8; 8];
    for (k, b) in key.iter_mut().zip(password.bytes()) {
        *k = b.reverse_bits();
    }
    let cipher = Des::new(GenericArray::from_slice(&key));
    let mut out = *challenge;
    for block in out.chunks_mut(8) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real check is the handshake with Xvnc in tests/sandbox.rs; this
    /// pins the properties the protocol relies on.
    #[test]
    fn is_deterministic_and_uses_the_first_eight_bytes() {
        let challenge: [u8; 16] = core::array::from_fn(|i| i as u8);
        let a = vnc_auth_response("password", &challenge);
        assert_eq!(a, vnc_auth_response("password", &challenge));
        assert_ne!(a, challenge);
        assert_ne!(a, vnc_auth_response("passwore", &challenge));
        assert_eq!(vnc_auth_response("password-longer", &challenge), a);
    }
}
