#!/usr/bin/env bash
# install.sh: install bgcut-watchd as a systemd service, from this checkout. Idempotent: run
# it again to upgrade the package; it never overwrites your configuration.
#
#   ./install.sh [--api-key-file FILE] [--join-group GROUP] [--start]     (as root)
#   ./install.sh --uninstall
#
# What goes where (PREFIX is / unless --prefix):
#   PREFIX/opt/bgcut-watchd/venv                    the virtualenv: package + "systemd" extra
#   PREFIX/opt/bgcut-watchd/README.md               the documentation the unit points at
#   PREFIX/opt/bgcut-watchd/config.schema.json      the configuration's JSON Schema (editors)
#   PREFIX/etc/bgcut-watchd/config.toml             from config.example.toml, only if absent
#   PREFIX/etc/bgcut-watchd/api-key                 mode 0600 root, read by LoadCredential=
#   PREFIX/etc/systemd/system/bgcut-watchd.service  the unit, paths adjusted to PREFIX
#   PREFIX/usr/local/sbin/bgcut-watchd-check        check-config --online inside the unit's
#                                                   sandbox, as the service (run as root)
#   PREFIX/usr/share/{bash-completion,zsh,fish}/... shell completion for bash, zsh and fish
#   PREFIX/var/lib/bgcut-watchd                     state, 0750 USER:GROUP (StateDirectory= of
#                                                   the unit; made here so that check-config
#                                                   finds it before the first start)
#
# Prerequisites: Python >= 3.11 with venv, and what systemd-python builds with. Debian/Ubuntu:
# installed with apt-get unless present or --no-apt. Fedora/RHEL (not automated):
#   sudo dnf install python3 python3-devel gcc pkgconf-pkg-config systemd-devel
set -euo pipefail

NAME=bgcut-watchd
UNIT="$NAME.service"
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APT_PACKAGES=(python3 python3-venv python3-dev gcc pkg-config libsystemd-dev)

prefix=/
systemd=1
apt=1
make_user=1
user=bgcut
group=bgcut
join_group=""
api_key_file=""
python=""   # --python, else /usr/bin/python3 (a python3 first on PATH may be a shim under
            # root's home, which the service's user cannot run)
pip_args=""
venv_args=""
assume_yes=0
start=0
uninstall=0

usage() {
    cat <<EOF
Usage: $0 [options]
  --prefix DIR          install under DIR instead of / (a staging root or a test); the user
                        is not created and systemctl only enables the unit under DIR
  --no-systemd          do not run systemctl at all (the unit file is still written)
  --no-apt              never install OS packages (fail later if something is missing)
  --no-user             do not create the system user and group
  --user NAME           service user (default: bgcut)
  --group NAME          its primary group (default: bgcut)
  --join-group GROUP    also add the user to GROUP, the group owning your shared folders
  --api-key-file FILE   install FILE as the API key (mode 0600); without it an existing key
                        is kept, else you are asked for one (or warned, with --yes)
  --python PATH         Python >= 3.11 to build the virtualenv with, one the service's user
                        can run (default: /usr/bin/python3, else python3 on PATH)
  --pip-args "ARGS"     extra arguments for pip install (e.g. --index-url URL)
  --venv-args "ARGS"    extra arguments for python -m venv (e.g. --system-site-packages)
  --start               start the service now (or restart it if it runs)
  --yes                 never prompt
  --uninstall           remove the virtualenv and the unit; keep the configuration, the API
                        key, the state, the user and every watched folder
  -h, --help            this text
EOF
}

BUILD_DIR=""
cleanup() { [ -z "$BUILD_DIR" ] || rm -rf "$BUILD_DIR"; }
trap cleanup EXIT

# sed_escape TEXT: TEXT usable on the right-hand side of a sed s### command
sed_escape() { printf '%s' "$1" | sed -e 's/[\\&#]/\\&/g'; }

say() { printf '%s: %s\n' "$NAME" "$*"; }
warn() { printf '%s: warning: %s\n' "$NAME" "$*" >&2; }
die() { printf '%s: error: %s\n' "$NAME" "$*" >&2; exit 1; }

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --prefix) prefix=${2:?--prefix needs a directory}; shift ;;
            --no-systemd) systemd=0 ;;
            --no-apt) apt=0 ;;
            --no-user) make_user=0 ;;
            --user) user=${2:?--user needs a name}; shift ;;
            --group) group=${2:?--group needs a name}; shift ;;
            --join-group) join_group=${2:?--join-group needs a group}; shift ;;
            --api-key-file) api_key_file=${2:?--api-key-file needs a file}; shift ;;
            --python) python=${2:?--python needs a path}; shift ;;
            --pip-args) pip_args=${2?--pip-args needs a value}; shift ;;
            --venv-args) venv_args=${2?--venv-args needs a value}; shift ;;
            --start) start=1 ;;
            --yes|-y) assume_yes=1 ;;
            --uninstall) uninstall=1 ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; die "unknown option: $1" ;;
        esac
        shift
    done
    if [ -n "$api_key_file" ]; then   # fail before anything is installed
        if [ ! -f "$api_key_file" ] || [ ! -r "$api_key_file" ]; then
            die "cannot read $api_key_file"
        fi
        grep -q '[^[:space:]]' "$api_key_file" || die "$api_key_file is empty"
    fi
    if [ "$prefix" != / ]; then
        mkdir -p "$prefix"
        prefix=$(cd "$prefix" && pwd -P)
    fi
    [ "$prefix" = / ] && prefix=""
    case "$prefix" in
        *[[:space:]]*) die "--prefix must not contain spaces (systemd splits ExecStart= on them)" ;;
    esac
    if [ -n "$prefix" ]; then
        make_user=0   # system users belong to the real root only
        [ -z "$join_group" ] || warn "--join-group is ignored with --prefix (no user is made)"
    elif [ "$(id -u)" != 0 ]; then
        die "run as root (sudo $0 from a user account), or use --prefix DIR"
    fi
    OPT="$prefix/opt/$NAME"
    VENV="$OPT/venv"
    ETC="$prefix/etc/$NAME"
    CONFIG="$ETC/config.toml"
    KEY="$ETC/api-key"
    UNIT_DIR="$prefix/etc/systemd/system"
    CHECK_BIN="$prefix/usr/local/sbin/$NAME-check"
    if [ -z "$python" ]; then
        python=python3
        [ ! -x /usr/bin/python3 ] || python=/usr/bin/python3
    fi
}

# --- prerequisites -------------------------------------------------------------------------

install_prerequisites() {
    if [ "$apt" = 0 ]; then
        return
    fi
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        warn "not Debian/Ubuntu: install the prerequisites yourself (see the top of $0)"
        return
    fi
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    fi
}

check_python() {
    command -v "$python" >/dev/null 2>&1 || die "$python not found (use --python PATH)"
    "$python" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || die "$python must be Python >= 3.11 with the venv module"
}

# --- user and group ------------------------------------------------------------------------

ensure_user() {
    [ "$make_user" = 1 ] || return 0
    getent group "$group" >/dev/null || groupadd --system "$group"
    if ! getent passwd "$user" >/dev/null; then
        useradd --system --gid "$group" --home-dir "/var/lib/$NAME" --no-create-home \
            --shell /usr/sbin/nologin --comment "bgcut-watchd daemon" "$user"
        say "created system user $user (group $group)"
    fi
    if [ -n "$join_group" ]; then
        getent group "$join_group" >/dev/null || die "group $join_group does not exist"
        usermod --append --groups "$join_group" "$user"
        say "$user is a member of $join_group"
    fi
}

# chown_group GROUP FILE...: owner root, group GROUP; skipped in a prefix or without the group
chown_group() {
    local owner_group=$1
    shift
    if [ -z "$prefix" ] && getent group "$owner_group" >/dev/null; then
        chown "root:$owner_group" "$@"
    fi
}

# --- the package ---------------------------------------------------------------------------

# as_service_user COMMAND...: COMMAND as the service's user when it exists (installing for
# real, as root), else as is
as_service_user() {
    if [ -z "$prefix" ] && getent passwd "$user" >/dev/null && command -v runuser >/dev/null
    then
        runuser -u "$user" -- "$@"
    else
        "$@"
    fi
}

install_venv() {
    # absent, its Python gone, or a Python the service's user cannot run
    if ! as_service_user "$VENV/bin/python" -c '' 2>/dev/null; then
        mkdir -p "$OPT"
        # shellcheck disable=SC2086  # venv_args holds several words on purpose
        "$python" -m venv --clear $venv_args "$VENV"
        say "created $VENV"
        if ! as_service_user "$VENV/bin/python" -c '' 2>/dev/null; then
            die "the service's user $user cannot run $VENV/bin/python (it is" \
                "$(readlink -f "$VENV/bin/python")): give a Python it can run with" \
                "--python (e.g. /usr/bin/python3)"
        fi
    fi
    # Build from a clean copy: pip would otherwise leave build/ and *.egg-info in the checkout.
    BUILD_DIR=$(mktemp -d)
    cp -R "$SRC/pyproject.toml" "$SRC/README.md" "$SRC/bgcut_watchd" "$BUILD_DIR/"
    # shellcheck disable=SC2086  # pip_args holds several words on purpose
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --root-user-action=ignore $pip_args "${BUILD_DIR}[systemd]"
    install -m 0644 "$SRC/README.md" "$OPT/README.md"
    install -m 0644 "$SRC/bgcut_watchd/config/schema.json" "$OPT/config.schema.json"
    say "installed $("$VENV/bin/python" -m pip show --disable-pip-version-check "$NAME" \
        | sed -n 's/^Version: /version /p') into $VENV"
}

# --- shell completion (generated from the parser, so it always matches --help) ------------

completion_path() {
    case $1 in
        bash) echo "$prefix/usr/share/bash-completion/completions/$NAME" ;;
        zsh) echo "$prefix/usr/share/zsh/vendor-completions/_$NAME" ;;
        fish) echo "$prefix/usr/share/fish/vendor_completions.d/$NAME.fish" ;;
    esac
}

install_completions() {
    local shell dest
    for shell in bash zsh fish; do
        dest=$(completion_path "$shell")
        mkdir -p "$(dirname "$dest")"
        if ! "$VENV/bin/$NAME" completion "$shell" >"$dest.new.$$" 2>/dev/null; then
            rm -f "$dest.new.$$"
            warn "could not generate the $shell completion: skipped"
            continue
        fi
        chmod 0644 "$dest.new.$$"
        mv -f "$dest.new.$$" "$dest"
    done
    say "installed shell completion for bash, zsh and fish"
}

# --- configuration and key -----------------------------------------------------------------

install_config() {
    mkdir -p "$ETC"
    chmod 0750 "$ETC"
    chown_group "$group" "$ETC"
    if [ -e "$CONFIG" ]; then
        say "kept $CONFIG"
        return
    fi
    local temp="$CONFIG.new.$$"
    sed -e "s#^api_key_file = \"/etc/$NAME/#api_key_file = \"$(sed_escape "$ETC")/#" \
        "$SRC/config.example.toml" >"$temp"
    chmod 0640 "$temp"
    chown_group "$group" "$temp"
    mv -f "$temp" "$CONFIG"
    say "wrote $CONFIG from config.example.toml: edit its [[folders]]"
}

install_key() {
    local temp="$KEY.new.$$"
    if [ -n "$api_key_file" ]; then
        (umask 077 && cat "$api_key_file" >"$temp")
    elif [ -e "$KEY" ]; then
        chmod 0600 "$KEY"
        say "kept $KEY"
        return
    elif [ "$assume_yes" = 0 ] && [ -t 0 ]; then
        local key
        read -r -s -p "BackgroundCut API key (input hidden): " key
        echo
        [ -n "$key" ] || die "no API key given"
        (umask 077 && printf '%s\n' "$key" >"$temp")
    else
        warn "no API key: write it to $KEY (mode 0600) before starting the service"
        return
    fi
    chmod 0600 "$temp"
    [ -n "$prefix" ] || chown root:root "$temp"
    mv -f "$temp" "$KEY"
    say "installed the API key as $KEY (mode 0600)"
}

# --- the state folder ---------------------------------------------------------------------

install_state_dir() {
    local state="$prefix/var/lib/$NAME"
    if [ -z "$prefix" ] && getent passwd "$user" >/dev/null; then
        install -d -o "$user" -g "$group" -m 0750 "$state"
    else
        install -d -m 0750 "$state"
    fi
}

# --- the unit ------------------------------------------------------------------------------

# systemd_running: whether this machine runs systemd (not so in most containers)
systemd_running() { [ -d /run/systemd/system ]; }

install_check() {
    mkdir -p "$(dirname "$CHECK_BIN")"
    local temp="$CHECK_BIN.new.$$"
    sed -e "s#/opt/$NAME/#$(sed_escape "$OPT")/#g" -e "s#/etc/$NAME/#$(sed_escape "$ETC")/#g" \
        "$SRC/systemd/$NAME-check" >"$temp"
    chmod 0755 "$temp"
    mv -f "$temp" "$CHECK_BIN"
    say "installed $CHECK_BIN"
}

install_unit() {
    mkdir -p "$UNIT_DIR"
    local temp="$UNIT_DIR/.$UNIT.new.$$"
    sed -e "s#/opt/$NAME/#$(sed_escape "$OPT")/#g" -e "s#/etc/$NAME/#$(sed_escape "$ETC")/#g" \
        -e "s#^User=.*#User=$(sed_escape "$user")#" \
        -e "s#^Group=.*#Group=$(sed_escape "$group")#" \
        "$SRC/systemd/$UNIT" >"$temp"
    chmod 0644 "$temp"
    mv -f "$temp" "$UNIT_DIR/$UNIT"
    say "wrote $UNIT_DIR/$UNIT"
    [ "$systemd" = 1 ] || return 0
    if [ -n "$prefix" ]; then
        systemctl --root="$prefix" enable "$UNIT"
        return
    fi
    if ! systemd_running; then
        # enable works on the files alone when systemd is not running
        systemctl enable "$UNIT" || warn "could not enable $UNIT"
        say "systemd is not running on this machine (a container?): $UNIT is installed" \
            "and enabled but not started; it starts at boot on a machine running systemd"
        return
    fi
    systemctl daemon-reload
    systemctl enable "$UNIT"
    if [ "$start" = 1 ]; then
        systemctl restart "$UNIT"
        say "started; see: systemctl status $NAME"
    elif systemctl is-active --quiet "$UNIT"; then
        systemctl try-restart "$UNIT"
        say "restarted the running service on the new version"
    else
        say "enabled; start it with: systemctl start $NAME"
    fi
}

# --- uninstall -----------------------------------------------------------------------------

uninstall() {
    if [ "$systemd" = 1 ] && [ -e "$UNIT_DIR/$UNIT" ]; then
        if [ -n "$prefix" ]; then
            systemctl --root="$prefix" disable "$UNIT" || true
        elif systemd_running; then
            systemctl disable --now "$UNIT" || true
        else
            systemctl disable "$UNIT" || true
        fi
    fi
    rm -f "$UNIT_DIR/$UNIT" "$CHECK_BIN" "$(completion_path bash)" "$(completion_path zsh)" \
        "$(completion_path fish)"
    if [ "$systemd" = 1 ] && [ -z "$prefix" ] && systemd_running; then
        systemctl daemon-reload
        systemctl reset-failed "$UNIT" 2>/dev/null || true
    fi
    case "$OPT" in
        */opt/"$NAME") rm -rf "$OPT" ;;
        *) die "refusing to remove $OPT" ;;
    esac
    say "removed $UNIT_DIR/$UNIT and $OPT"
    say "kept $ETC (configuration and API key), /var/lib/$NAME (job history) and every" \
        "watched folder"
    [ -n "$prefix" ] || say "the user stays; remove it with: userdel $user && groupdel $group"
}

main() {
    parse_args "$@"
    if [ ! -f "$SRC/pyproject.toml" ] || [ ! -d "$SRC/bgcut_watchd" ]; then
        die "run me from a bgcut-watchd checkout ($SRC has no pyproject.toml)"
    fi
    if [ "$uninstall" = 1 ]; then
        uninstall
        return
    fi
    install_prerequisites
    check_python
    ensure_user
    install_venv
    install_completions
    install_config
    install_key
    install_state_dir
    install_check
    install_unit
    next_steps
}

next_steps() {
    cat <<EOF
$NAME: done. Next, as root (from a user account: sudo before each command):
  1. edit $CONFIG: your [[folders]] and variants
  2. let the service write to them: systemctl edit $NAME, then under [Service]:
       ReadWritePaths=/srv/photos /mnt/your-share
  3. $CHECK_BIN
       runs check-config --online as the service will run: as $user, inside the unit's
       sandbox, with its API key; "OK" means the service will find its folders, key and API
  4. systemctl start $NAME
EOF
}

main "$@"
