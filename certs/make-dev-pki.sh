#!/bin/sh
# Creates a DEVELOPMENT PKI for sealflow's TLS/DTLS listeners with the openssl CLI:
#   a CA, a collector (server) certificate and exporter client certificates.
# The same layout as `sealflow pki --out DIR` (src/ingest/trust/dev-pki.ts), for machines
# without Node.js (e.g. to make exporter certificates on a jump host).
#
# usage: certs/make-dev-pki.sh OUT_DIR [EXPORTER_NAME ...]
#   default exporter name: exporter1.sealflow.test
#
# DEVELOPMENT ONLY: the CA key is written unprotected to OUT_DIR/ca/. See certs/README.md.
set -eu

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 64
fi
OUT=$1
shift
if [ $# -eq 0 ]; then set -- exporter1.sealflow.test; fi
for NAME in "$@"; do
  case $NAME in
    *[!A-Za-z0-9.-]* | '') echo "make-dev-pki: exporter name '$NAME' is not a DNS name" >&2; exit 64 ;;
  esac
done
DAYS=${DAYS:-825}
CA_DAYS=${CA_DAYS:-3650}

warn() {
  printf '\n*** DEVELOPMENT PKI ONLY: the CA key is stored unprotected in %s/ca; do not use it in production (see certs/README.md) ***\n\n' "$OUT" >&2
}
warn

command -v openssl >/dev/null 2>&1 || { echo "make-dev-pki: openssl is not installed" >&2; exit 69; }
umask 077
mkdir -p "$OUT/ca/issued" "$OUT/exporters"
CA=$(cd "$OUT/ca" && pwd)
: > "$CA/index.txt"
openssl rand -hex 8 | sed 's/^./1/' > "$CA/serial"
echo 1000 > "$CA/crlnumber"
cat > "$CA/ca.cnf" <<CNF
[ ca ]
default_ca = sealflow_ca
[ sealflow_ca ]
dir = $CA
database = \$dir/index.txt
new_certs_dir = \$dir/issued
serial = \$dir/serial
crlnumber = \$dir/crlnumber
certificate = \$dir/ca.crt.pem
private_key = \$dir/ca.key.pem
default_md = sha256
default_days = $DAYS
default_crl_days = 30
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[ policy_any ]
commonName = supplied
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = placeholder
[ root_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ crl_ext ]
authorityKeyIdentifier = keyid:always
CNF

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }

# issue NAME CN USAGE SAN  → $CA/NAME.crt.pem, $CA/NAME.key.pem
issue() {
  newkey "$CA/$1.key.pem"
  openssl req -config "$CA/ca.cnf" -new -sha256 -key "$CA/$1.key.pem" -subj "/CN=$2" -out "$CA/$1.csr.pem"
  cat > "$CA/$1.ext.cnf" <<EXT
[ ext ]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = $3
subjectAltName = $4
EXT
  openssl ca -batch -notext -config "$CA/ca.cnf" -days "$DAYS" -in "$CA/$1.csr.pem" -out "$CA/$1.crt.pem" \
    -extfile "$CA/$1.ext.cnf" -extensions ext 2>/dev/null
}

newkey "$CA/ca.key.pem"
openssl req -config "$CA/ca.cnf" -new -x509 -sha256 -key "$CA/ca.key.pem" -subj "/CN=sealflow development CA" \
  -days "$CA_DAYS" -extensions root_ca -out "$CA/ca.crt.pem"
openssl ca -batch -config "$CA/ca.cnf" -gencrl -crlexts crl_ext -out "$CA/ca.crl.pem" 2>/dev/null

HOST=$(hostname 2>/dev/null | tr 'A-Z' 'a-z' | tr -cd 'a-z0-9.-')
SAN="DNS:localhost, IP:127.0.0.1, IP:::1"
if [ -n "$HOST" ] && [ "$HOST" != localhost ]; then SAN="DNS:localhost, DNS:$HOST, IP:127.0.0.1, IP:::1"; fi
issue collector localhost serverAuth "$SAN"

cp "$CA/ca.crt.pem" "$CA/ca.crl.pem" "$CA/collector.crt.pem" "$CA/collector.key.pem" "$OUT/"
chmod 644 "$OUT/ca.crt.pem" "$OUT/ca.crl.pem" "$OUT/collector.crt.pem"

for NAME in "$@"; do
  issue "exporter-$NAME" "$NAME" clientAuth "DNS:$NAME"
  cp "$CA/exporter-$NAME.key.pem" "$OUT/exporters/$NAME.key.pem"
  cp "$CA/exporter-$NAME.crt.pem" "$OUT/exporters/$NAME.crt.pem"
  chmod 644 "$OUT/exporters/$NAME.crt.pem"
done

echo "development PKI written to $OUT:"
echo "  listeners.tls.caFile:   $OUT/ca.crt.pem"
echo "  listeners.tls.crlFiles: [$OUT/ca.crl.pem]"
echo "  listeners.tls.certFile: $OUT/collector.crt.pem"
echo "  listeners.tls.keyFile:  $OUT/collector.key.pem"
for NAME in "$@"; do echo "  exporter $NAME: $OUT/exporters/$NAME.crt.pem $OUT/exporters/$NAME.key.pem (identities: - name: $NAME)"; done
warn
