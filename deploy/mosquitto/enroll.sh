#!/usr/bin/env bash
# pantau's broker-side identities: a small CA, the broker's certificate, and one identity per
# site (a password, a client certificate, or both). Run on the broker host, as root.
# Walk-through: docs/deploy.md. Tested by tests/test_tls_acl.py.
#
#   enroll.sh ca                            make the CA (once): ca.pem, ca.key, crl.pem
#   enroll.sh broker HOSTNAME [IP ...]      the broker's TLS certificate (names agents dial)
#   enroll.sh site SITE [--password] [--cert]   enroll a site (default: --password)
#   enroll.sh collector [USER]              a password for the collector (default pantau-collector)
#   enroll.sh revoke SITE                   remove the site's password, revoke its certificate
#
# Each enrollment writes a bundle directory to copy to the site gateway's /etc/pantau/ (then
# delete it here): ca.pem, and mqtt-password and/or site.crt + site.key (the collector's:
# ca.pem and collector-mqtt-password).
#
# Environment: PANTAU_PKI (default /etc/mosquitto/pantau-ca: CA, broker key, CRL),
# PANTAU_PASSWD (default /etc/mosquitto/pantau.passwd), PANTAU_OUT (default ".": bundles go to
# PANTAU_OUT/pantau-bundle-<name>), PANTAU_DAYS (certificate lifetime, default 3650).
set -euo pipefail
umask 077

pki="${PANTAU_PKI:-/etc/mosquitto/pantau-ca}"
passwd="${PANTAU_PASSWD:-/etc/mosquitto/pantau.passwd}"
out="${PANTAU_OUT:-.}"
days="${PANTAU_DAYS:-3650}"

say() { printf '%s\n' "enroll.sh: $*"; }
die() { printf '%s\n' "enroll.sh: error: $*" >&2; exit 1; }
usage() { sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

check_name() {  # the same rule as the agent's `site:` (it becomes an MQTT topic level)
    [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$ ]] || die "$1: use letters, digits, _ . - only"
}

need_ca() {
    [ -f "$pki/ca.pem" ] && [ -f "$pki/ca.key" ] || die "no CA in $pki: run enroll.sh ca first"
}

# `openssl ca` keeps an index of what it signed, so certificates can be revoked (crl.pem).
ca_config() {
    cat > "$pki/openssl-ca.cnf" <<EOF
[ca]
default_ca = pantau
[pantau]
dir = $pki
database = \$dir/index.txt
new_certs_dir = \$dir/issued
serial = \$dir/serial
crlnumber = \$dir/crlnumber
certificate = \$dir/ca.pem
private_key = \$dir/ca.key
default_md = sha256
default_days = $days
default_crl_days = $days
policy = anything
unique_subject = no
copy_extensions = copy
[anything]
commonName = supplied
[client]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
[server]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
EOF
}

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2> /dev/null; }

sign() {  # sign CSR CERT EXTENSIONS
    openssl ca -batch -notext -config "$pki/openssl-ca.cnf" -extensions "$3" -in "$1" \
        -out "$2" 2> "$pki/last-sign.log" || { cat "$pki/last-sign.log" >&2; die "signing failed"; }
}

gen_crl() {
    openssl ca -gencrl -config "$pki/openssl-ca.cnf" -out "$pki/crl.pem" 2> /dev/null
    chmod 0644 "$pki/crl.pem"
}

cmd_ca() {
    install -d -m 0755 "$pki"
    install -d -m 0700 "$pki/issued"
    ca_config
    if [ -f "$pki/ca.pem" ]; then
        say "keeping the CA in $pki"
    else
        key "$pki/ca.key"
        openssl req -new -x509 -key "$pki/ca.key" -out "$pki/ca.pem" -days "$days" -sha256 \
            -subj "/CN=pantau CA" -addext "basicConstraints=critical,CA:true" \
            -addext "keyUsage=critical,keyCertSign,cRLSign"
        : > "$pki/index.txt"
        openssl rand -hex 16 > "$pki/serial"
        echo 01 > "$pki/crlnumber"
        say "new CA: $pki/ca.pem (give it to every site), $pki/ca.key (keep it here)"
    fi
    chmod 0644 "$pki/ca.pem"
    [ -f "$pki/crl.pem" ] || gen_crl
}

cmd_broker() {
    local host="$1" san="DNS:$1" ip
    need_ca
    shift
    for ip in "$@"; do san="$san,IP:$ip"; done
    key "$pki/broker.key"
    openssl req -new -key "$pki/broker.key" -out "$pki/broker.csr" -subj "/CN=$host" \
        -addext "subjectAltName=$san"
    sign "$pki/broker.csr" "$pki/broker.pem" server
    rm -f "$pki/broker.csr"
    chmod 0644 "$pki/broker.pem"
    # mosquitto reads its key after dropping to the mosquitto user
    if getent group mosquitto > /dev/null; then chgrp mosquitto "$pki/broker.key"; fi
    chmod 0640 "$pki/broker.key"
    say "broker certificate for $san: $pki/broker.pem (systemctl restart mosquitto)"
}

add_password() {  # add_password USER BUNDLE FILE
    local user="$1" bundle="$2" file="$3" password
    command -v mosquitto_passwd > /dev/null || die "mosquitto_passwd not found (apt-get install mosquitto)"
    password="$(openssl rand -base64 24 | tr -d '/+=\n')"
    [ -f "$passwd" ] || { install -m 0640 /dev/null "$passwd"; }
    mosquitto_passwd -b "$passwd" "$user" "$password"
    if getent group mosquitto > /dev/null; then chgrp mosquitto "$passwd"; fi
    chmod 0640 "$passwd"
    printf '%s\n' "$password" > "$bundle/$file"
    say "password for $user added to $passwd: run 'systemctl reload mosquitto'"
}

add_cert() {  # add_cert NAME BUNDLE
    local name="$1" bundle="$2"
    need_ca
    key "$bundle/site.key"
    openssl req -new -key "$bundle/site.key" -out "$bundle/site.csr" -subj "/CN=$name"
    sign "$bundle/site.csr" "$bundle/site.crt" client
    rm -f "$bundle/site.csr"
    say "client certificate CN=$name: $bundle/site.crt and site.key"
}

bundle_dir() {
    local dir="$out/pantau-bundle-$1"
    install -d -m 0700 "$dir"
    [ ! -f "$pki/ca.pem" ] || install -m 0644 "$pki/ca.pem" "$dir/ca.pem"
    printf '%s\n' "$dir"
}

cmd_site() {
    local site="$1" want_password=0 want_cert=0 bundle
    check_name "$site"
    shift
    for arg in "$@"; do
        case "$arg" in
            --password) want_password=1 ;;
            --cert) want_cert=1 ;;
            *) usage ;;
        esac
    done
    [ $want_password = 1 ] || [ $want_cert = 1 ] || want_password=1
    # Usernames are client ids on the broker: a site must not be able to log in as a collector.
    [[ "$site" != pantau-collector* ]] || die "pantau-collector* names are the collectors'"
    bundle="$(bundle_dir "$site")"
    [ $want_password = 0 ] || add_password "$site" "$bundle" mqtt-password
    [ $want_cert = 0 ] || add_cert "$site" "$bundle"
    say "bundle for site $site: $bundle (copy its files to the gateway's /etc/pantau/," \
        "then delete it here); the ACL needs no change"
}

cmd_collector() {
    local user="${1:-pantau-collector}" bundle
    check_name "$user"
    bundle="$(bundle_dir "$user")"
    add_password "$user" "$bundle" collector-mqtt-password
    say "bundle for the collector: $bundle (copy to the NOC host's /etc/pantau/)"
}

cmd_revoke() {
    local site="$1" serial
    check_name "$site"
    if [ -f "$passwd" ] && grep -q "^$site:" "$passwd"; then
        mosquitto_passwd -D "$passwd" "$site"
        say "password of $site removed"
    fi
    if [ -f "$pki/index.txt" ]; then
        # every valid certificate issued to CN=<site>
        while read -r serial; do
            openssl ca -config "$pki/openssl-ca.cnf" -revoke "$pki/issued/$serial.pem" \
                2> /dev/null
            say "certificate $serial of $site revoked"
        done < <(awk -F'\t' -v cn="/CN=$site" '$1 == "V" && $6 == cn { print $4 }' \
                 "$pki/index.txt")
        gen_crl
    fi
    say "now: systemctl reload mosquitto (re-reads the password file and the CRL; restart it" \
        "to also cut a connection that is still open)"
}

case "${1:-}" in
    ca) [ $# = 1 ] || usage; cmd_ca ;;
    broker) [ $# -ge 2 ] || usage; shift; cmd_broker "$@" ;;
    site) [ $# -ge 2 ] || usage; shift; cmd_site "$@" ;;
    collector) [ $# -le 2 ] || usage; shift; cmd_collector "$@" ;;
    revoke) [ $# = 2 ] || usage; cmd_revoke "$2" ;;
    *) usage ;;
esac
