#!/bin/bash
# sbuild-trial.sh: build a tiny Debian package with sbuild driving this
# schroot, end to end, the way a new user would.
#
# Documentation and a manual test; not run by CI.  Run as root on Debian 12
# (bookworm) that can reach a Debian mirror with apt-get.  It:
#
#   1. builds and installs this schroot into $PREFIX (default /usr/local),
#      unless $PREFIX/bin/schroot exists already (REBUILD=1 forces it);
#   2. installs sbuild and mmdebstrap (never Debian's schroot package);
#   3. makes a bookworm buildd chroot with mmdebstrap (kept if present);
#   4. defines it in $PREFIX/etc/schroot/chroot.d/ as an overlay chroot with
#      the sbuild profile;
#   5. makes a native source package hello-schroot 1.0 on the spot;
#   6. builds it with sbuild --chroot-mode=schroot, as root and then as an
#      unprivileged member of the sbuild group ($BUILD_USER, created if
#      missing; BUILD_USER= skips that run), through a wrapper that logs
#      every schroot command sbuild runs;
#   7. checks that a .deb came out and that nothing was left behind (mounts,
#      session records, overlay directories, loop devices).
#
# Environment: PREFIX, CHROOT_DIR, MIRROR (default: the bookworm mirror apt
# uses), WORK (default /tmp/sbuild-trial), BUILD_USER (default builder),
# REBUILD=1.  Re-running is safe: the chroot, the install and the user are
# reused; the package, the logs and the output directories are made anew.
#
# Why the sbuild configuration below is needed: sbuild 0.85 (bookworm) lists
# the chroots with "schroot --info" under an emptied environment ("local
# %ENV" in Sbuild::ChrootInfoSchroot::get_info_all), so execvp searches its
# default path /bin:/usr/bin and never finds $PREFIX/bin/schroot: with no
# /usr/bin/schroot, sbuild fails with 'Can't exec "schroot": No such file or
# directory' and "E: Error creating chroot"; with Debian's schroot installed,
# it silently asks Debian's schroot (which knows none of our chroots) and
# fails the same way.  The other calls (-b, -r, -e) do use PATH.  SCHROOT is
# an internal sbuild key (no $variable for it), but the configuration file is
# evaluated where $conf is in scope, so   $conf->set('SCHROOT', '/path');
# in ~/.sbuildrc (or $SBUILD_CONFIG) points every call at our binary.  An
# install with --prefix=/usr (on a machine without Debian's schroot) or a
# symlink /usr/bin/schroot -> /usr/local/bin/schroot works without it.

set -eu

PREFIX=${PREFIX:-/usr/local}
SCHROOT=$PREFIX/bin/schroot
CONFDIR=$PREFIX/etc/schroot
CHROOT=bookworm-amd64-sbuild
CHROOT_DIR=${CHROOT_DIR:-/srv/chroot/$CHROOT}
WORK=${WORK:-/tmp/sbuild-trial}
BUILD_USER=${BUILD_USER-builder}
SRCDIR=$(cd "$(dirname "$0")/../.." && pwd)

say() { printf '\n=== %s\n' "$*"; }
die() { printf 'E: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"

# --- 1. build and install this schroot ---------------------------------------
if [ ! -x "$SCHROOT" ] || [ "${REBUILD:-0}" = 1 ]; then
    say "building schroot from $SRCDIR into $PREFIX"
    (cd "$SRCDIR" && ./bootstrap)
    mkdir -p /tmp/sb-build
    (cd /tmp/sb-build &&
        "$SRCDIR"/configure --prefix="$PREFIX" --localstatedir=/var --runstatedir=/run &&
        make -j"$(nproc)" && make install)
fi
"$SCHROOT" -V | head -1
[ -u "$SCHROOT" ] || die "$SCHROOT is not setuid root (make install as root does that)"

# --- 2. sbuild and mmdebstrap -------------------------------------------------
# sbuild only Recommends schroot: --no-install-recommends keeps Debian's out.
say "installing sbuild, mmdebstrap"
need=
for p in sbuild mmdebstrap dpkg-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
fi
if dpkg -s schroot >/dev/null 2>&1; then
    echo "W: Debian's schroot package is installed too (/usr/bin/schroot, /etc/schroot);"
    echo "W: it is never used here, but it shares /var/lib/schroot with a build"
    echo "W: configured --localstatedir=/var and cannot read our JSON session records."
fi

# --- 3. the chroot --------------------------------------------------------------
MIRROR=${MIRROR:-$(apt-get indextargets --format '$(REPO_URI)' \
    'Codename: bookworm' 'Identifier: Packages' | head -1)}
[ -n "$MIRROR" ] || die "no bookworm mirror in apt's sources; set MIRROR="
if [ ! -x "$CHROOT_DIR/usr/bin/dpkg" ]; then
    say "mmdebstrap --variant=buildd bookworm $CHROOT_DIR $MIRROR"
    mkdir -p "$(dirname "$CHROOT_DIR")"
    time mmdebstrap --variant=buildd bookworm "$CHROOT_DIR" "$MIRROR"
fi

# --- 4. define it for schroot ---------------------------------------------------
# sbuild -d bookworm on amd64 looks for bookworm-amd64-sbuild, then
# bookworm-sbuild, bookworm-amd64, bookworm (names or aliases).
say "writing $CONFDIR/chroot.d/$CHROOT"
install -d -m 0755 "$CONFDIR/chroot.d"
cat > "$CONFDIR/chroot.d/$CHROOT" <<EOF
[$CHROOT]
description=Debian bookworm/amd64 for sbuild
type=directory
directory=$CHROOT_DIR
union-type=overlay
profile=sbuild
groups=root,sbuild
root-groups=root,sbuild
source-root-groups=root,sbuild
aliases=bookworm-sbuild
EOF
chown root:root "$CONFDIR/chroot.d/$CHROOT"
chmod 0644 "$CONFDIR/chroot.d/$CHROOT"
# The sbuild profile's fstab binds /var/lib/sbuild/build to /build.
install -d -o sbuild -g sbuild /var/lib/sbuild/build
"$SCHROOT" -l | grep -x "chroot:$CHROOT"

# --- 5. a tiny native source package ------------------------------------------
say "making hello-schroot 1.0 in $WORK/src"
install -d -m 0755 "$WORK"
rm -rf "$WORK/src"
P=$WORK/src/hello-schroot-1.0
mkdir -p "$P/debian/source"
cat > "$P/hello.c" <<'EOF'
#include <stdio.h>
int main(void) { puts("hello from a schroot-built package"); return 0; }
EOF
cat > "$P/Makefile" <<'EOF'
CFLAGS ?= -O2 -g
PREFIX ?= /usr
all: hello-schroot
hello-schroot: hello.c
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $<
check: hello-schroot
	./hello-schroot | grep -q schroot
install: hello-schroot
	install -D -m 0755 hello-schroot $(DESTDIR)$(PREFIX)/bin/hello-schroot
clean:
	rm -f hello-schroot
EOF
cat > "$P/debian/control" <<'EOF'
Source: hello-schroot
Section: misc
Priority: optional
Maintainer: schroot trial <root@localhost>
Build-Depends: debhelper-compat (= 13)
Standards-Version: 4.6.2
Rules-Requires-Root: no

Package: hello-schroot
Architecture: any
Depends: ${shlibs:Depends}, ${misc:Depends}
Description: tiny test package built by sbuild through schroot
 Prints a greeting. Exists only to test that sbuild can drive schroot.
EOF
printf '#!/usr/bin/make -f\n%%:\n\tdh $@\n' > "$P/debian/rules"
chmod 0755 "$P/debian/rules"
echo "3.0 (native)" > "$P/debian/source/format"
cat > "$P/debian/changelog" <<'EOF'
hello-schroot (1.0) bookworm; urgency=medium

  * Initial release, for the sbuild trial.

 -- schroot trial <root@localhost>  Wed, 25 Nov 2026 00:00:00 +0000
EOF
cat > "$P/debian/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Files: *
Copyright: 2026 schroot trial
License: CC0-1.0
EOF
(cd "$WORK/src" && dpkg-source -b hello-schroot-1.0 >/dev/null)
DSC=$WORK/src/hello-schroot_1.0.dsc

# --- 6. the logging wrapper and sbuild's configuration -------------------------
say "wrapper $WORK/wrapbin/schroot and sbuild config $WORK/sbuildrc"
install -d -m 0755 "$WORK/wrapbin"
cat > "$WORK/wrapbin/schroot" <<EOF
#!/bin/bash
# Logs each call (argv, caller, a few variables), runs the real schroot as a
# child to log its exit status and duration, and forwards signals to it.
# sbuild strips the environment of most calls, so the log path is fixed.
LOG=$WORK/schroot-calls.log
REAL=$SCHROOT
EOF
cat >> "$WORK/wrapbin/schroot" <<'EOF'
start=$(date +%s.%N)
{
  printf '[%s] pid=%d ppid=%d uid=%d euid=%d cwd=%s\n' "$(date +%T.%3N)" $$ $PPID "$(id -ru)" "$(id -u)" "$PWD"
  printf '  argv:'; printf ' %q' "$@"; printf '\n'
  printf '  env: PATH=%q HOME=%q LC_ALL=%q nvars=%d\n' "${PATH-}" "${HOME-}" "${LC_ALL-}" "$(env | wc -l)"
} >>"$LOG" 2>/dev/null
# Explicit <&0: a background job of a non-interactive shell otherwise reads
# /dev/null, and sbuild feeds files to "schroot -r ... -- sh -c 'cat > f'".
"$REAL" "$@" <&0 &
child=$!
for s in TERM INT HUP QUIT; do trap "kill -$s $child 2>/dev/null" $s; done
while :; do wait $child; rc=$?; kill -0 $child 2>/dev/null || break; done
printf '  -> pid=%d rc=%d %.3fs\n' $$ "$rc" "$(echo "$(date +%s.%N) - $start" | bc)" >>"$LOG" 2>/dev/null
exit $rc
EOF
chmod 0755 "$WORK/wrapbin/schroot"
: > "$WORK/schroot-calls.log"
chmod 0666 "$WORK/schroot-calls.log"
# Use "$SCHROOT" instead of the wrapper for a plain recipe (see the header).
cat > "$WORK/sbuildrc" <<EOF
\$conf->set('SCHROOT', '$WORK/wrapbin/schroot');
\$chroot_mode = 'schroot';
1;
EOF
chmod 0644 "$WORK/sbuildrc"

# --- 7. build, check, clean -----------------------------------------------------
leftovers() {
    local bad=0
    if grep -q "$CHROOT-" /proc/self/mountinfo; then
        echo "E: mounts left:"; grep "$CHROOT-" /proc/self/mountinfo; bad=1
    fi
    if "$SCHROOT" -l --all-sessions | grep "^session:$CHROOT-"; then
        echo "E: sessions left (above)"; bad=1
    fi
    if ls -A /var/lib/schroot/union/overlay /run/schroot/mount 2>/dev/null | grep "^$CHROOT-"; then
        echo "E: overlay or mount directories left (above)"; bad=1
    fi
    if losetup -a | grep -q .; then
        echo "W: loop devices in use (not necessarily ours):"; losetup -a
    fi
    return $bad
}

run_sbuild() {   # run_sbuild USER OUTDIR
    local user=$1 out=$2 rc=0 start
    rm -rf "$out"; install -d -o "$user" "$out"
    say "sbuild as $user in $out"
    start=$(date +%s)
    su "$user" -s /bin/sh -c "cd '$out' && SBUILD_CONFIG='$WORK/sbuildrc' \
        sbuild --chroot-mode=schroot -d bookworm --arch=amd64 \
            --no-run-lintian --no-run-piuparts --no-run-autopkgtest '$DSC'" \
        > "$out.log" 2>&1 || rc=$?
    echo "sbuild exit status $rc after $(( $(date +%s) - start ))s (log: $out.log, build log: $out/*.build)"
    grep -E '^(Status|Build needed|Fail-Stage)' "$out"/hello-schroot_1.0_amd64.build || true
    [ "$rc" = 0 ] || { tail -20 "$out.log"; return 1; }
    ls -l "$out"/hello-schroot_1.0_amd64.deb
    dpkg-deb -c "$out"/hello-schroot_1.0_amd64.deb | grep -q ./usr/bin/hello-schroot
    leftovers
}

status=0
run_sbuild root "$WORK/out-root" || status=1

if [ -n "$BUILD_USER" ]; then
    if ! id "$BUILD_USER" >/dev/null 2>&1; then
        useradd -m -s /bin/bash "$BUILD_USER"
    fi
    id -nG "$BUILD_USER" | grep -qw sbuild || sbuild-adduser "$BUILD_USER" >/dev/null
    run_sbuild "$BUILD_USER" "$WORK/out-$BUILD_USER" || status=1
fi

say "schroot commands sbuild ran (full log: $WORK/schroot-calls.log)"
grep -c '^  argv:' "$WORK/schroot-calls.log" | sed 's/$/ calls/'
# One line per kind of call: session ids, build directories and everything
# after the command's name are elided.
grep '^  argv:' "$WORK/schroot-calls.log" |
    sed -E 's/^  argv: //; s/[-a-z0-9]*-sbuild-[0-9a-f-]{36}/SESSION/g;
            s#/build/[^ ]*#/build/...#g; s/ -- ([^ ]+).*/ -- \1 .../' |
    sort | uniq -c | sort -rn

# End whatever this trial might have left (no-op when all went well).
"$SCHROOT" -l --all-sessions | sed -n "s/^session:\($CHROOT-.*\)/\1/p" |
    while read -r s; do "$SCHROOT" -e -f -c "$s" || status=1; done

[ "$status" = 0 ] && say "PASS: sbuild built hello-schroot through $SCHROOT" ||
    say "FAIL (see above)"
exit $status
