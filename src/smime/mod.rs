//! S/MIME: unwrap, verify, decrypt, sign, encrypt, and the certificate stores.
