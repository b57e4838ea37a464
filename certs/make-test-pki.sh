#!/usr/bin/env bash
# Makes a complete test PKI with the openssl command: a CA, TLS server certificate for the local
# mail system, S/MIME certificates for the gateway, GPs, groups and experts, and the awkward
# ones the security tests need (revoked, expired, no emailProtection, another CA).
# Usage: certs/make-test-pki.sh OUTDIR   (idempotent: does nothing when OUTDIR/ca.crt exists)
set -euo pipefail
out=${1:?usage: make-test-pki.sh OUTDIR}
[ -f "$out/ca.crt" ] && [ -f "$out/crl/ca.crl.pem" ] && exit 0
mkdir -p "$out"/{users,crl,work,recipients}
cd "$out"
umask 077
W=work
export SAN_EMAIL=unused@invalid.test

ca_conf() { # $1 = ca name
  cat > "$W/$1.cnf" <<CNF
[ ca ]
default_ca = this
[ this ]
dir = $W/$1
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
crlnumber = \$dir/crlnumber
certificate = $1.crt
private_key = $W/$1.key
default_md = sha256
default_crl_days = 3650
policy = any
copy_extensions = none
unique_subject = no
email_in_dn = no
utf8 = yes
string_mask = utf8only
[ any ]
commonName = supplied
emailAddress = optional
organizationName = optional
[ req ]
distinguished_name = dn
string_mask = utf8only
utf8 = yes
prompt = no
[ dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ server ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
authorityKeyIdentifier = keyid
[ smime ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment, nonRepudiation
extendedKeyUsage = emailProtection, clientAuth
subjectAltName = email:\${ENV::SAN_EMAIL}
authorityKeyIdentifier = keyid
[ nousage ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = email:\${ENV::SAN_EMAIL}
authorityKeyIdentifier = keyid
CNF
  mkdir -p "$W/$1/newcerts"
  : > "$W/$1/index.txt"
  openssl rand -hex 8 > "$W/$1/serial"
  echo 01 > "$W/$1/crlnumber"
}

make_ca() { # name, CN
  ca_conf "$1"
  openssl req -new -x509 -newkey rsa:2048 -nodes -keyout "$W/$1.key" -out "$1.crt" \
    -days 7300 -subj "/O=Teleavis tests/CN=$2" -utf8 -config "$W/$1.cnf" -extensions v3_ca 2>/dev/null
}

# issue CA NAME CN EMAIL EXT [startdate enddate]; NEWKEY=… picks another key (rsa:1024, ec:FILE)
issue() {
  local ca=$1 name=$2 cn=$3 email=$4 ext=$5 start=${6:-} end=${7:-}
  openssl req -new -newkey "${NEWKEY:-rsa:2048}" -nodes -keyout "users/$name.key" -out "$W/$name.csr" \
    -subj "/CN=${cn//\//\\/}" -utf8 -config "$W/$ca.cnf" 2>/dev/null
  local dates=(-days 3650)
  [ -n "$start" ] && dates=(-startdate "$start" -enddate "$end")
  SAN_EMAIL=$email openssl ca -batch -config "$W/$ca.cnf" -extensions "$ext" "${dates[@]}" \
    -in "$W/$name.csr" -out "users/$name.crt" -notext 2>/dev/null
  openssl pkcs12 -export -in "users/$name.crt" -inkey "users/$name.key" -certfile "$ca.crt" \
    -name "$cn" -passout pass:test -out "users/$name.p12"
  printf '%s\n' "$email" > "users/$name.email"
}

make_ca ca "Teleavis Test CA"
make_ca other-ca "Autre AC de test"

# TLS server certificate for the local Postfix and Dovecot.
openssl req -new -newkey rsa:2048 -nodes -keyout server.key -out "$W/server.csr" \
  -subj "/CN=localhost" -config "$W/ca.cnf" 2>/dev/null
openssl ca -batch -config "$W/ca.cnf" -extensions server -days 3650 -in "$W/server.csr" \
  -out server.crt -notext 2>/dev/null

issue ca gateway   "Téléexpertise Hôpital de test"  teleexpertise@hopital.test smime
issue ca gp        "10001234567/MARTIN Olivier"     dr.martin@cabinet.test     smime
issue ca gp2       "10007654321/BUA Jean-René"      dr.bua@cabinet.test        smime
issue ca infectio  "Maladies infectieuses"          infectio@hopital.test      smime
issue ca pneumo    "Pneumologie"                    pneumo@hopital.test        smime
issue ca expert    "10009876543/RUCH Yvon"          dr.ruch@hopital.test       smime
issue ca expert2   "10001112223/LEGRAND Anne"       dr.legrand@hopital.test    smime
issue ca intruder  "10005555555/INTRUS Paul"        intrus@cabinet.test        smime
issue ca pharma    "10005550006/BLANC Luc"          ph.blanc@cabinet.test      smime
issue ca admin     "DSI messagerie"                 dsi@hopital.test           smime
issue ca revoked   "10006666666/REVOQUE Marc"       revoque@cabinet.test       smime
issue ca expired   "10007777777/EXPIRE Luc"         expire@cabinet.test        smime 20200101000000Z 20210101000000Z
issue ca nousage   "10008888888/SANSUSAGE Eva"      sansusage@cabinet.test     nousage
issue other-ca otherca "10009999999/AUTRE Jean"     autre@cabinet.test         smime
# Key sizes (smime.min_rsa_bits, weak_key): RSA-1024 and P-224 are refused, P-256 accepted; a
# group certificate with a 1024-bit key must never be encrypted to.
openssl ecparam -name prime256v1 -out "$W/p256.pem"
openssl ecparam -name secp224r1 -out "$W/p224.pem"
NEWKEY=rsa:1024 issue ca weak "10004444444/FAIBLE Paul" faible@cabinet.test smime
NEWKEY=ec:$W/p256.pem issue ca ecgp "10003333333/COURBE Alice" courbe@cabinet.test smime
NEWKEY=ec:$W/p224.pem issue ca ecweak "10002222222/PETITE Courbe" petite@cabinet.test smime
NEWKEY=rsa:1024 issue ca infectioweak "Maladies infectieuses" infectio@hopital.test smime
# Client certificate for IMAP AUTHENTICATE EXTERNAL and SMTP client-certificate login:
# Dovecot takes the user name from the CN.
issue ca imapclient "teleexpertise@hopital.test"   teleexpertise@hopital.test smime

openssl ca -config "$W/ca.cnf" -revoke users/revoked.crt 2>/dev/null
openssl ca -config "$W/ca.cnf" -gencrl -out crl/ca.crl.pem 2>/dev/null
openssl ca -config "$W/other-ca.cnf" -gencrl -out crl/other-ca.crl.pem 2>/dev/null

# Trust anchors the gateway uses (the other CA is deliberately absent).
mkdir -p trust && cp ca.crt trust/ca.crt
cat ca.crt > ca-bundle.crt
chmod 644 ./*.crt users/*.crt trust/*.crt crl/*.pem users/*.email
chmod 600 ./*.key users/*.key users/*.p12
printf 'test\n' > users/p12.password && chmod 600 users/p12.password
