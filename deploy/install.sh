#!/usr/bin/env bash
# Install or upgrade pantau's agent or collector as a systemd service. Idempotent: run it again
# to upgrade; configuration and secrets are kept. Walk-through: docs/deploy.md.
#
#   deploy/install.sh agent|collector                 install or upgrade, enable the unit
#   deploy/install.sh secret agent|collector NAME     store a secret read from stdin as
#                                                     /etc/pantau/NAME (mode 0600, service user)
#
# Environment (all optional):
#   PANTAU_ROOT=/          install into this directory instead of / (staging, tests). systemd is
#                          then neither reloaded nor started; the unit is enabled the way
#                          `systemctl --root` does it. The venv only works at that path.
#   PANTAU_PREFIX=/opt/pantau   where the venv (PREFIX/venv) and docs (PREFIX/share) go
#   PANTAU_SOURCE=<this checkout>   what to install: a source directory, a wheel, or a pip
#                          requirement such as pantau==0.2.0
#   PANTAU_PIP_ARGS=       extra pip arguments, e.g. "--no-index --find-links /media/usb/wheels"
#                          on a gateway without internet
#   PANTAU_PYTHON=python3  the Python (>= 3.11) the venv is made from
#
# What it does, each time: system user pantau-<component> (systemd-sysusers); venv with the
# package (reinstalled, dependencies upgraded only if needed); docs and example configs under
# PREFIX/share; /etc/pantau/profiles.d/ for the agent's site profiles, if missing;
# /etc/pantau/<component>.yaml from the example only if it does not exist yet
# (owner root, group = the service user, mode 0640: it may hold SNMP communities); the unit in
# /etc/systemd/system, enabled; on a running system, restarted if it was running.
set -euo pipefail
umask 022

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="${PANTAU_ROOT:-/}"
root="${root%/}"                      # "" for the real root, so "$root/etc" is "/etc"
prefix="${PANTAU_PREFIX:-/opt/pantau}"
source_spec="${PANTAU_SOURCE:-$here}"
python="${PANTAU_PYTHON:-python3}"
read -r -a pip_args <<< "${PANTAU_PIP_ARGS:-}"

say() { printf '%s\n' "install.sh: $*"; }
die() { printf '%s\n' "install.sh: error: $*" >&2; exit 1; }

usage() {
    sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

component_ok() {
    case "${1:-}" in agent|collector) ;; *) usage ;; esac
}

is_root() { [ "$(id -u)" = 0 ]; }

# uid/gid of a user as the installed root sees it (its /etc/passwd, not the host's NSS).
ids_of() {
    awk -F: -v u="$1" '$1 == u { print $3 ":" $4; found = 1 } END { exit !found }' \
        "$root/etc/passwd"
}

live_systemd() { [ -z "$root" ] && [ -d /run/systemd/system ]; }

owner_and_mode() {  # owner_and_mode UID:GID MODE FILE...
    local ids="$1" mode="$2"
    shift 2
    chmod "$mode" "$@"
    if is_root; then
        chown "$ids" "$@"
    fi
}

create_user() {
    local c="$1" user="pantau-$1"
    install -d -m 0755 "$root/etc"
    install -D -m 0644 "$here/deploy/systemd/pantau-$c.sysusers" \
        "$root/usr/lib/sysusers.d/pantau-$c.conf"
    if command -v systemd-sysusers > /dev/null; then
        systemd-sysusers --root="${root:-/}" "$root/usr/lib/sysusers.d/pantau-$c.conf" > /dev/null
    elif ! ids_of "$user" > /dev/null 2>&1; then
        [ -z "$root" ] || die "systemd-sysusers is needed to create $user under $root"
        useradd --system --user-group --home-dir /nonexistent --shell /usr/sbin/nologin \
            --comment "pantau $c" "$user"
    fi
    ids_of "$user" > /dev/null || die "user $user was not created in $root/etc/passwd"
}

install_package() {
    local c="$1" venv="$root$prefix/venv" spec="$source_spec" tmp=""
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2> /dev/null \
        || die "$python is missing or older than 3.11 (Debian/Ubuntu: apt-get install python3)"
    if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -c '' 2> /dev/null; then
        say "the venv at $venv no longer runs (Python upgraded?): making it again"
        rm -rf "$venv"
    fi
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -m venv "$venv" \
            || die "cannot make a venv (Debian/Ubuntu: apt-get install python3-venv)"
    fi
    if [ -d "$spec" ]; then
        # Build from a clean copy: a build leaves build/ and *.egg-info in the tree it runs in.
        tmp="$(mktemp -d)"
        tar -C "$spec" --exclude=.git --exclude=.venv --exclude=./build \
            --exclude='*.egg-info' --exclude=__pycache__ --exclude=./tests --exclude=./.demo \
            --exclude=.pytest_cache --exclude=.ruff_cache -cf - . | tar -C "$tmp" -xf -
        spec="$tmp"
    fi
    say "installing $source_spec into $venv"
    # --upgrade reinstalls the package itself; dependencies only when they no longer fit.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade \
        "${pip_args[@]}" "$spec" || { [ -z "$tmp" ] || rm -rf "$tmp"; die "pip install failed"; }
    [ -z "$tmp" ] || rm -rf "$tmp"
    "$venv/bin/pantau-$c" --version > /dev/null || die "the installed pantau-$c does not run"
}

install_docs() {
    local share="$root$prefix/share"
    install -d -m 0755 "$share/doc" "$share/examples"
    install -m 0644 "$here/README.md" "$here"/docs/*.md "$share/doc/"
    install -m 0644 "$here"/config/*.example.yaml "$share/examples/"
}

install_config() {
    local c="$1" ids etc="$root/etc/pantau"
    ids="$(ids_of "pantau-$c")"
    install -d -m 0755 "$etc"
    if [ "$c" = agent ] && [ ! -d "$etc/profiles.d" ]; then
        install -d -m 0755 "$etc/profiles.d"    # the site's own device profiles (*.yaml)
    fi
    if [ ! -e "$etc/$c.yaml" ]; then
        install -m 0640 "$here/config/$c.example.yaml" "$etc/$c.yaml"
        say "new $etc/$c.yaml from the example: edit it, then check it (see below)"
    else
        say "keeping $etc/$c.yaml (the current example is in $prefix/share/examples)"
    fi
    owner_and_mode "0:${ids#*:}" 0640 "$etc/$c.yaml"
}

install_unit() {
    local c="$1" unit="pantau-$1.service" dir="$root/etc/systemd/system"
    install -d -m 0755 "$dir"
    sed "s#/opt/pantau#$prefix#g" "$here/deploy/systemd/$unit" > "$dir/$unit.tmp"
    chmod 0644 "$dir/$unit.tmp"
    mv "$dir/$unit.tmp" "$dir/$unit"
    if live_systemd; then
        systemctl daemon-reload
        systemctl enable --quiet "$unit"
        if systemctl is-active --quiet "$unit"; then
            say "restarting the running $unit with the new version (its queue is on disk)"
            systemctl restart "$unit"
        fi
    elif command -v systemctl > /dev/null; then
        systemctl --root="${root:-/}" enable --quiet "$unit"
    else
        install -d -m 0755 "$dir/multi-user.target.wants"
        ln -sfn "/etc/systemd/system/$unit" "$dir/multi-user.target.wants/$unit"
    fi
}

cmd_install() {
    local c="$1"
    if [ -z "$root" ] && ! is_root; then
        die "run as root (or set PANTAU_ROOT to stage elsewhere)"
    fi
    is_root || say "not root: files keep your ownership (fine for a staged root only)"
    create_user "$c"
    install_package "$c"
    install_docs
    install_config "$c"
    install_unit "$c"
    say "pantau-$c installed: $root$prefix/venv, $root/etc/pantau/$c.yaml," \
        "$root/etc/systemd/system/pantau-$c.service (enabled)"
    if "$root$prefix/venv/bin/pantau-$c" check-config --config "$root/etc/pantau/$c.yaml" \
            > /dev/null 2>&1; then
        say "config is valid"
        if live_systemd && ! systemctl is-active --quiet "pantau-$c.service"; then
            say "start it: systemctl start pantau-$c"
        fi
    else
        say "config is not ready yet:"
        "$root$prefix/venv/bin/pantau-$c" check-config --config "$root/etc/pantau/$c.yaml" \
            2>&1 | sed 's/^/    /' || true
        say "after editing it run:"
        say "  $prefix/venv/bin/pantau-$c check-config --config /etc/pantau/$c.yaml"
        say "  systemctl restart pantau-$c"
    fi
}

cmd_secret() {
    local c="$1" name="${2:-}" ids etc="$root/etc/pantau" value tmp
    [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "secret name: letters, digits, . _ -"
    ids="$(ids_of "pantau-$c")" || die "pantau-$c is not installed yet: run install.sh $c first"
    if [ -t 0 ]; then
        read -r -s -p "value for $etc/$name (not shown): " value
        echo
    else
        value="$(cat)"
    fi
    value="${value%$'\n'}"
    [ -n "$value" ] || die "empty secret: nothing written"
    install -d -m 0755 "$etc"
    tmp="$(mktemp "$etc/.$name.XXXXXX")"    # mode 0600 from mktemp
    printf '%s\n' "$value" > "$tmp"
    owner_and_mode "$ids" 0600 "$tmp"
    mv -f "$tmp" "$etc/$name"
    say "wrote $etc/$name (mode 0600, owner pantau-$c)"
}

case "${1:-}" in
    agent|collector) [ $# = 1 ] || usage; cmd_install "$1" ;;
    secret) [ $# = 3 ] || usage; component_ok "$2"; cmd_secret "$2" "$3" ;;
    *) usage ;;
esac
