#!/usr/bin/env bash
# Test certificates for the TLS tests and benchmark, made with the openssl CLI:
#   tls_certs.sh DIR
# DIR/ca.{crt,key}          the test CA
# DIR/server.{crt,key}      for localhost and 127.0.0.1 (SAN), signed by ca
# DIR/expired.{crt,key}     same names, signed by ca, valid 2020-01-01..2021-01-01
# DIR/client.{crt,key}      a client certificate (mutual TLS), signed by ca
# DIR/other-ca.{crt,key}    an unrelated CA (for "unknown CA")
# Keys are RSA 2048 (what managed Redis services typically present) and
# mode 0600. Nothing here is secret: the files live in the test's temp dir.
set -euo pipefail
d=${1:?usage: tls_certs.sh DIR}
mkdir -p "$d"
cd "$d"
umask 077

key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

ca() { # name subject
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.crt"
}
ca ca "posagent test CA"
ca other-ca "some other CA"

cat >ext-server.cnf <<'X'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
X
cat >ext-client.cnf <<'X'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
X

leaf() { # name subject extfile
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 825 \
    -extfile "$3" -out "$1.crt" 2>/dev/null
}
leaf server localhost ext-server.cnf
leaf client posagent-T-0001 ext-client.cnf

# An expired certificate needs explicit dates in the past: "openssl ca" takes
# -startdate/-enddate (openssl x509 -req only counts days from now).
key expired.key
openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr
mkdir -p ca-db
: >ca-db/index.txt
echo 1000 >ca-db/serial
cat >ca.cnf <<X
[ca]
default_ca = test_ca
[test_ca]
dir = $PWD/ca-db
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
certificate = $PWD/ca.crt
private_key = $PWD/ca.key
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
X
openssl ca -batch -notext -config ca.cnf -extfile ext-server.cnf \
  -startdate 20200101000000Z -enddate 20210101000000Z \
  -in expired.csr -out expired.crt 2>/dev/null
chmod 0644 ./*.crt
