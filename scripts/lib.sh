# Shell helpers the setup scripts share; sourced, never run. Each helper exits the calling
# script with a message that says what to do when it cannot do its job.

# apt_install_pinned WHAT PACKAGE=VERSION...
# Installs Debian packages at the pinned versions given, as root or with passwordless sudo,
# running `apt-get update` only when apt does not know a pinned version yet. No service a
# package ships is started while installing (a policy-rc.d refuses it): the tests start the
# servers they need themselves.
apt_install_pinned() {
    local what="$1"
    shift
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if ! command -v sudo >/dev/null; then
            echo "error: $what is missing and installing it needs root; run: apt-get install $*" >&2
            exit 1
        fi
        sudo="sudo"
    fi
    echo "==> installing $what: $* (Debian packages)" >&2
    if ! apt-cache show "$@" >/dev/null 2>&1; then
        $sudo apt-get update -qq
    fi
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
        $sudo chmod +x "$policy"
        made_policy=1
    fi
    local status=0
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "$@" >/dev/null || status=$?
    if [ -n "$made_policy" ]; then
        $sudo rm -f "$policy"
    fi
    if [ "$status" != 0 ]; then
        echo "error: apt-get install $* failed (exit $status)" >&2
        exit "$status"
    fi
}

# npm_ci_stamped DIR WHAT
# Installs DIR's node_modules with `npm ci` (pinned by DIR/package-lock.json) unless they
# were installed from the current package.json and lock file (a stamp file records that).
npm_ci_stamped() {
    local dir="$1" what="$2"
    local stamp="$dir/node_modules/.kvhost-installed"
    if [ -f "$stamp" ] && [ "$stamp" -nt "$dir/package-lock.json" ] &&
        [ "$stamp" -nt "$dir/package.json" ]; then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "error: npm not found; install Node.js (20 or later, with npm) for $what" >&2
        exit 1
    fi
    echo "==> installing $what into $dir/node_modules (npm ci, pinned by package-lock.json)" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$stamp"
}
