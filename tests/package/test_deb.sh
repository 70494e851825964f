#!/usr/bin/env bash
# The Debian package end to end: built twice from a copy of the tree, then installed, upgraded,
# removed, reinstalled and purged in a debootstrap chroot, checking the node's data each time.
#
# usage: test_deb.sh [SOURCE_DIR]     (default: the tree this script is in)
# Needs root, debootstrap, dpkg-dev, debhelper, the build dependencies and the Debian mirror;
# without one of them it exits 77 (meson's "skipped") and says which.
# TERN_TEST_MIRROR overrides the mirror (default: the bookworm one in /etc/apt/sources*);
# the debootstrap tarball is cached in ${XDG_CACHE_HOME:-/var/cache}/tern-test.
set -uo pipefail
# shellcheck disable=SC2016 # dpkg-query's ${Status} is dpkg-query's to expand

src=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
suite=bookworm
cache=${XDG_CACHE_HOME:-/var/cache}/tern-test
# What the chroot has beyond minbase: systemd for systemd-analyze and deb-systemd-helper's
# symlinks, man-db for `man -w`, sudo for the commands docs/debian.md gives. Not tern's
# Depends: apt-get must pull those itself.
include=systemd,man-db,sudo
started=$SECONDS

skip() {
	echo "SKIP: $*"
	exit 77
}
die() {
	echo "FAIL: $*"
	exit 1
}

[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, chroot, mount)"
for tool in debootstrap dpkg-buildpackage dpkg-checkbuilddeps dh chroot mount setpriv; do
	command -v "$tool" >/dev/null ||
		skip "no $tool: apt-get install debootstrap dpkg-dev debhelper"
done
[ -f "$src/debian/control" ] || die "$src/debian/control: no debian/ directory to build"
(cd "$src" && dpkg-checkbuilddeps) 2>&1 ||
	skip "build dependencies missing (above): apt-get install them, or run .ci/setup"

arch=$(dpkg --print-architecture)
mirror=${TERN_TEST_MIRROR:-}
if [ -z "$mirror" ]; then
	# The machine's own Debian mirror: deb822 .sources first, then one-line sources.list.
	mirror=$(awk '
		/^URIs:/ { uri = $2 }
		/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "'$suite'") ok = 1 }
		/^[[:space:]]*$/ { if (ok && uri !~ /security/) { print uri; exit } ok = 0; uri = "" }
		END { if (ok && uri !~ /security/) print uri }
	' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
	mirror=$(awk '$1 == "deb" && $3 == "'$suite'" { print $2; exit }' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d "${TMPDIR:-/var/tmp}/tern-deb.XXXXXX") || die "mktemp"
root=$work/root

# Runs as root in the chroot with a clean environment.
in_root() {
	chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
		DEBIAN_FRONTEND=noninteractive "$@"
}
# Runs as the service user, the way docs/debian.md tells the operator to.
as_tern() {
	in_root sudo -u tern "$@"
}

nspawn=""
cleanup() {
	local status=$?
	if [ -n "$nspawn" ] && kill -0 "$nspawn" 2>/dev/null; then
		kill -TERM "$nspawn"
		timeout 30 tail --pid="$nspawn" -f /dev/null || kill -KILL "$nspawn"
		wait "$nspawn" 2>/dev/null
	fi
	if [ -d "$root" ]; then
		# Whatever still runs in the chroot (a daemon of a failed check) goes first.
		local p
		for p in /proc/[0-9]*; do
			[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -9 "${p#/proc/}" 2>/dev/null
		done
		awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts |
			sort -r | while read -r m; do
			umount "$m" 2>/dev/null || umount -l "$m"
		done
		if awk -v r="$root" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
			echo "cleanup: something is still mounted under $root: not deleting $work"
			exit 1
		fi
	fi
	rm -rf --one-file-system "$work"
	echo "(${SECONDS}s in all; the work directory $work is deleted)"
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== network: $mirror"
/usr/lib/apt/apt-helper -o APT::Sandbox::User=root download-file "$mirror/dists/$suite/Release" "$work/Release" \
	>"$work/net.log" 2>&1 || {
	cat "$work/net.log"
	skip "cannot reach the Debian mirror $mirror (set TERN_TEST_MIRROR to another)"
}

failed=0
checks=0
ok() {
	checks=$((checks + 1))
	echo "ok - $*"
}
not_ok() {
	checks=$((checks + 1))
	failed=$((failed + 1))
	echo "not ok - $*"
}
# check DESCRIPTION COMMAND...: the command's success is the check's.
check() {
	local what=$1
	shift
	local out
	if out=$("$@" 2>&1); then
		ok "$what"
	else
		not_ok "$what"
		printf '%s\n' "$out" | sed 's/^/    /' | tail -n 20
	fi
}
# same DESCRIPTION EXPECTED ACTUAL
same() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1"
		echo "    expected: $2"
		echo "    got:      $3"
	fi
}

# --- the packages --------------------------------------------------------------------------

version=$(cd "$src" && dpkg-parsechangelog -S Version) || die "debian/changelog: no version"
upstream=${version%%-*}
version2="$version+pkgtest1"

# copy_tree DEST: the source tree without build directories, VCS data or earlier package builds.
copy_tree() {
	mkdir -p "$1"
	tar -C "$src" --exclude='./build*' --exclude=./.git --exclude='./obj-*' \
		--exclude=./debian/tern --exclude=./debian/.debhelper --exclude=./debian/files \
		--exclude='./debian/*.substvars' --exclude='./debian/*debhelper*' \
		--exclude=./debian/tern-dbgsym -cf - . | tar -C "$1" -xf -
}

# build NAME [ENV...]: dpkg-buildpackage in $work/NAME/tern-VERSION; the .deb lands in $work/NAME.
build() {
	local name=$1 dir=$work/$1/tern-$upstream
	shift
	copy_tree "$dir"
	if [ "$name" = v2 ]; then
		# The upgrade: a changelog entry with a higher version, as a maintainer would add.
		{
			printf 'tern (%s) unstable; urgency=medium\n\n' "$version2"
			printf '  * Upgrade rehearsal of tests/package/test_deb.sh.\n\n'
			printf ' -- tern package test <root@localhost>  %s\n\n' "$(date -R)"
			cat "$dir/debian/changelog"
		} >"$dir/debian/changelog.new" && mv "$dir/debian/changelog.new" "$dir/debian/changelog"
	fi
	(cd "$dir" && env "$@" dpkg-buildpackage -us -uc -b) >"$work/build-$name.log" 2>&1
}

echo "== building $version (with the unit tests) and $version2 (nocheck), and the chroot"
build v1 DEB_BUILD_OPTIONS=parallel=2 &
pid_v1=$!

# The chroot, from a cached tarball of minbase's packages; a month old, it is made again.
tarball=$cache/$suite-$arch-minbase-$(printf '%s' "$include" | md5sum | cut -c1-8).tgz
mkdir -p "$cache"
(
	set -e
	if [ ! -s "$tarball" ] || [ -n "$(find "$tarball" -mtime +30)" ]; then
		echo "making $tarball"
		debootstrap --variant=minbase --include="$include" --arch="$arch" \
			--make-tarball="$tarball.new" "$suite" "$work/tarball" "$mirror"
		mv "$tarball.new" "$tarball"
	fi
	debootstrap --variant=minbase --include="$include" --arch="$arch" \
		--unpack-tarball="$tarball" "$suite" "$root" "$mirror"
) >"$work/debootstrap.log" 2>&1 &
pid_root=$!

wait $pid_v1 || {
	tail -n 40 "$work/build-v1.log"
	die "dpkg-buildpackage of $version failed (above)"
}
if ! grep -q '^Ok:' "$work/build-v1.log" || ! grep -q 'suite unit' "$work/build-v1.log"; then
	die "the build of $version ran no unit tests (dh_auto_test)"
fi
ok "built $version, with meson test --suite unit: $(awk '/^Ok:/ {print $2; exit}' "$work/build-v1.log") passed"

build v2 DEB_BUILD_OPTIONS="nocheck parallel=2" || {
	tail -n 40 "$work/build-v2.log"
	die "dpkg-buildpackage of $version2 failed (above)"
}
if grep -q '^Ok:' "$work/build-v2.log"; then
	not_ok "DEB_BUILD_OPTIONS=nocheck: the build of $version2 ran tests all the same"
else
	ok "built $version2 with DEB_BUILD_OPTIONS=nocheck, no tests run"
fi
deb1=$(ls "$work"/v1/tern_"$version"_*.deb) || die "no tern_$version deb"
deb2=$(ls "$work"/v2/tern_"$version2"_*.deb) || die "no tern_$version2 deb"

wait $pid_root || {
	tail -n 40 "$work/debootstrap.log"
	die "debootstrap failed (above)"
}
ok "debootstrap $suite minbase chroot from $tarball"

# The API file systems of the chroot (systemd-nspawn below mounts its own).
mount_api() {
	mount -t proc proc "$root/proc" && mount -t sysfs -o ro sysfs "$root/sys" &&
		mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
}
umount_api() {
	umount "$root/dev/pts" && umount "$root/sys" && umount "$root/proc"
}
mount_api || die "mounting /proc, /sys and /dev/pts in the chroot"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null
# sudo wants to resolve the host name.
printf '127.0.1.1 %s\n' "$(hostname)" >>"$root/etc/hosts"
# Nothing starts services in a chroot (and systemd is not PID 1 there anyway).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
mkdir -p "$root/tmp/debs"
cp "$deb1" "$deb2" "$root/tmp/debs/"
in_root apt-get update -q >"$work/apt-update.log" 2>&1 || {
	cat "$work/apt-update.log"
	die "apt-get update in the chroot"
}

# apt_get ARGS...: in the chroot, its output kept in $work/apt.log.
apt_get() {
	in_root apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"$@" >"$work/apt.log" 2>&1
	local status=$?
	sed 's/^/    | /' "$work/apt.log" | grep -v -e 'Reading database' -e '^    | Selecting' |
		tail -n 25
	return $status
}

home=/var/lib/tern
tern_id() { as_tern tern --home $home id 2>/dev/null; }
# The ids of the bundles waiting and of the messages sent (not their ages, which change).
queue_ids() { as_tern tern --home $home queue --json 2>/dev/null | grep -o '"id": "[0-9a-f]*"'; }
contacts() { as_tern tern --home $home contact list 2>/dev/null; }
key_sum() { sha256sum "$root$home/identity.key" 2>&1 | cut -d' ' -f1; }
unit_path() {
	local p
	for p in /lib/systemd/system/tern.service /usr/lib/systemd/system/tern.service; do
		[ -f "$root$p" ] && echo "$p" && return 0
	done
	return 1
}
perms() { in_root stat -c '%U:%G %a' "$1" 2>&1; }
# gone DESCRIPTION PATH: the path is not in the chroot (or what is there is shown).
gone() {
	if [ -e "$root$2" ] || [ -L "$root$2" ]; then
		not_ok "$1"
		in_root ls -ld "$2" | sed 's/^/    still there: /'
	else
		ok "$1"
	fi
}

# --- install -------------------------------------------------------------------------------

echo "== install $version: apt-get install ./$(basename "$deb1")"
apt_get install "/tmp/debs/$(basename "$deb1")" || die "apt-get install of $version failed"
check "postinst created a node and told its identity" grep -q "created a tern node in $home" "$work/apt.log"
same "dpkg: tern $version installed" "install ok installed $version" \
	"$(in_root dpkg-query -W -f='${Status} ${Version}' tern 2>&1)"
for dep in libsodium23 libsqlite3-0 libev4 libserialport0 adduser procps; do
	check "apt pulled the dependency $dep" in_root dpkg-query -W "$dep"
done

same "tern --version" "tern $upstream" "$(in_root tern --version 2>&1)"
check "tern-sim is installed" test -x "$root/usr/bin/tern-sim"
check "man page tern(1) installed" test -f "$root/usr/share/man/man1/tern.1.gz"
check "man -w tern finds it" in_root man -w tern
check "bash completion installed" test -f "$root/usr/share/bash-completion/completions/tern"
check "the completion script parses" bash -n "$root/usr/share/bash-completion/completions/tern"
check "docs in /usr/share/doc/tern" test -f "$root/usr/share/doc/tern/docs/debian.md"

passwd=$(in_root getent passwd tern)
IFS=: read -r _ _ uid _ _ pw_home pw_shell <<<"$passwd"
check "system user tern (uid $uid) exists" test -n "$passwd"
check "its uid is a system uid" test "${uid:-9999}" -lt 1000
same "its home" "$home" "$pw_home"
same "its shell" "/usr/sbin/nologin" "$pw_shell"
check "group tern exists" in_root getent group tern
check "tern is in group dialout (serial lines)" bash -c "in_groups=\$(chroot '$root' id -nG tern); [[ \" \$in_groups \" == *' dialout '* ]]"

same "node home $home: owner and mode" "tern:tern 700" "$(perms $home)"
same "identity.key: owner and mode" "tern:tern 600" "$(perms $home/identity.key)"
same "store.db: owner and mode" "tern:tern 600" "$(perms $home/store.db)"
check "the key has no passphrase (the service reads it unattended)" as_tern tern --home $home id
same "/etc/tern/tern.conf: owner and mode" "root:root 644" "$(perms /etc/tern/tern.conf)"
check "/etc/tern/tern.conf is a conffile" grep -qx /etc/tern/tern.conf "$root/var/lib/dpkg/info/tern.conffiles"
check "tern config check /etc/tern/tern.conf passes, as tern" \
	as_tern tern --home $home config check /etc/tern/tern.conf

if unit=$(unit_path); then
	ok "unit installed: $unit"
else
	not_ok "no tern.service installed"
fi
check "tern.service enabled (multi-user.target.wants)" \
	test -L "$root/etc/systemd/system/multi-user.target.wants/tern.service"
# systemd-analyze verify in the chroot, where /usr/bin/tern and man(1) exist.
if out=$(in_root systemd-analyze verify "$unit" 2>&1); then
	ok "systemd-analyze verify $unit (in the chroot)"
else
	not_ok "systemd-analyze verify $unit (in the chroot)"
	echo "$out" | sed 's/^/    /'
fi
sec=$(in_root systemd-analyze security --offline=yes --threshold=25 "$unit" 2>&1)
status=$?
echo "$sec" | grep -v '✓' | sed 's/^/    /'
if [ $status -eq 0 ]; then
	ok "systemd-analyze security: $(echo "$sec" | sed -n 's/.*Overall exposure level for [^:]*: //p')"
else
	not_ok "systemd-analyze security: exposure over 2.5, or it failed (above)"
fi

# The service's own command line, as tern, without systemd: the journal's format (JOURNAL_STREAM
# set: <6> priorities, no timestamps), tern status while it runs, SIGTERM exits 0.
exec_start=$(sed -n 's/^ExecStart=//p' "$root$unit")
echo "== the daemon as the unit runs it: $exec_start"
# Not through in_root: $! must be the daemon's pid (chroot, env and setpriv exec), not a subshell's.
# shellcheck disable=SC2086 # the command line is words, as systemd splits it
chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
	setpriv --reuid=tern --regid=tern --init-groups --reset-env \
	env JOURNAL_STREAM=8:4242 $exec_start >"$root/tmp/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 50); do
	[ -S "$root$home/api.sock" ] && break
	sleep 0.1
done
check "tern status answers while the daemon runs" as_tern tern --home $home status
kill -TERM $daemon
wait $daemon
same "the daemon exits 0 on SIGTERM" 0 $?
sed 's/^/    | /' "$root/tmp/daemon.log"
check "its log has journal priorities" grep -q '^<6>' "$root/tmp/daemon.log"
check "its log has no timestamps (journald adds them)" \
	bash -c "! grep -qE '^[0-9]{4}-[0-9]{2}-' '$root/tmp/daemon.log'"
check "its log says it stopped" grep -q 'stopped' "$root/tmp/daemon.log"

echo "== node data: a contact and a queued message, as tern"
in_root tern --home /tmp/alice init >/dev/null || die "tern init of the contact's node"
alice=$(in_root tern --home /tmp/alice id | head -n 1)
check "tern contact add alice" as_tern tern --home $home contact add alice "$alice"
check "tern send alice -m ..." as_tern tern --home $home send alice -m "Pump repaired."
id_before=$(tern_id)
sum_before=$(key_sum)
queue_before=$(queue_ids)
contacts_before=$(contacts)
same "the message waits in the queue: a bundle and a sent message" 2 "$(grep -c . <<<"$queue_before")"
as_tern tern --home $home queue 2>&1 | sed 's/^/    | /'
# The admin's edit of the conffile, which every later step must keep.
sed -i 's/^#log-level = info/log-level = warn/' "$root/etc/tern/tern.conf"
check "the edited tern.conf still checks" as_tern tern --home $home config check /etc/tern/tern.conf

# keep_data STEP: the node is the one made above.
keep_data() {
	same "$1: same identity (tern id)" "$id_before" "$(tern_id)"
	same "$1: identity.key unchanged" "$sum_before" "$(key_sum)"
	same "$1: contacts kept" "$contacts_before" "$(contacts)"
	same "$1: queue kept" "$queue_before" "$(queue_ids)"
	same "$1: node home owner and mode" "tern:tern 700" "$(perms $home)"
	same "$1: identity.key owner and mode" "tern:tern 600" "$(perms $home/identity.key)"
	check "$1: the admin's edit of tern.conf kept" grep -qx 'log-level = warn' "$root/etc/tern/tern.conf"
}

# --- upgrade -------------------------------------------------------------------------------

echo "== upgrade to $version2"
apt_get install "/tmp/debs/$(basename "$deb2")" || die "apt-get install of $version2 failed"
same "dpkg: tern $version2 installed" "install ok installed $version2" \
	"$(in_root dpkg-query -W -f='${Status} ${Version}' tern 2>&1)"
check "upgrade: postinst made no new node" bash -c "! grep -q 'created a tern node' '$work/apt.log'"
keep_data "upgrade"

# --- remove --------------------------------------------------------------------------------

echo "== remove"
apt_get remove tern || not_ok "apt-get remove tern failed"
same "dpkg: tern removed, its configuration kept" "deinstall ok config-files" \
	"$(in_root dpkg-query -W -f='${Status}' tern 2>&1)"
gone "remove: /usr/bin/tern is gone" /usr/bin/tern
gone "remove: the man page is gone" /usr/share/man/man1/tern.1.gz
check "remove: /etc/tern/tern.conf kept" test -f "$root/etc/tern/tern.conf"
check "remove: the admin's edit of tern.conf kept" grep -qx 'log-level = warn' "$root/etc/tern/tern.conf"
check "remove: the node home kept" test -d "$root$home"
same "remove: identity.key unchanged" "$sum_before" "$(key_sum)"
check "remove: store.db kept" test -f "$root$home/store.db"
check "remove: the user tern kept" in_root getent passwd tern

echo "== reinstall $version2"
apt_get install "/tmp/debs/$(basename "$deb2")" || die "apt-get install of $version2 after remove failed"
check "reinstall: postinst made no new node" bash -c "! grep -q 'created a tern node' '$work/apt.log'"
keep_data "reinstall"

# --- the service under systemd -------------------------------------------------------------

# systemd does not run in a chroot: systemd-nspawn boots the same tree as a container, and the
# unit runs there as on a machine, with its user, its sandbox and the journal.
if ! command -v systemd-nspawn >/dev/null || ! command -v nsenter >/dev/null; then
	echo "== the service under systemd: not checked, no systemd-nspawn (apt-get install systemd-container)"
else
	echo "== the service under systemd: systemd-nspawn --boot"
	umount_api || die "unmounting the chroot's /proc, /sys, /dev/pts"
	printf '127.0.0.1 localhost\n::1 localhost\n' >>"$root/etc/hosts"
	# The info lines are what the journal checks look for: undo the admin's log-level = warn.
	sed -i 's/^log-level = warn/log-level = info/' "$root/etc/tern/tern.conf"
	systemd-nspawn -D "$root" --boot --register=no --keep-unit --console=passive \
		-M "tern-test-$$" </dev/null >"$work/boot.log" 2>&1 &
	nspawn=$!
	leader=""
	# The container's init: the child of nspawn that has become systemd.
	for _ in $(seq 200); do
		leader=$(pgrep -P "$nspawn" -x systemd | head -n 1)
		[ -n "$leader" ] && break
		sleep 0.1
	done
	[ -n "$leader" ] || {
		cat "$work/boot.log"
		die "systemd-nspawn did not start"
	}
	in_box() {
		nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"
	}
	sleep 1
	state=$(in_box timeout 60 systemctl is-system-running --wait 2>&1)
	echo "    booted: $state"
	same "tern.service is active after boot" active "$(in_box systemctl is-active tern 2>&1)"
	pid=$(in_box systemctl show -p MainPID --value tern 2>&1)
	same "the daemon runs as tern" tern "$(in_box stat -c %U "/proc/$pid" 2>&1)"
	status_file=$(in_box cat "/proc/$pid/status" 2>&1)
	check "its sandbox: no new privileges, a seccomp filter, no capabilities" bash -c \
		"grep -q '^NoNewPrivs:.1' <<<\"\$1\" && grep -q '^Seccomp:.2' <<<\"\$1\" &&
		grep -q '^CapEff:.0000000000000000' <<<\"\$1\"" _ "$status_file"
	mounts=$(in_box cat "/proc/$pid/mountinfo" 2>&1)
	check "its mounts: / read-only, /home covered, $home read-write" bash -c \
		"awk '\$5 == \"/\" && \$6 ~ /^ro/ { r = 1 } \$5 == \"/home\" { h = 1 }
		\$5 == \"$home\" && \$6 ~ /^rw/ { w = 1 } END { exit !(r && h && w) }' <<<\"\$1\"" _ "$mounts"
	check "sudo -u tern tern --home $home status" in_box sudo -u tern tern --home $home status

	# A peer over TCP, a second node in the container: the hardened daemon dials it, by name.
	# Both loopbacks: localhost resolves to ::1 first, and the daemon tries a name's first only.
	node_id=$(in_box sudo -u tern tern --home $home id 2>/dev/null | head -n 1)
	# It has the service's node as a contact too: a short text comes in a compact envelope,
	# which only a recipient that knows the sender can verify (docs/envelope.md).
	check "a second node in the container: init, peer and contact add, run --listen" \
		in_box sh -c "install -d -o tern -g tern -m 0700 /srv/peer &&
		sudo -u tern tern --home /srv/peer init >/dev/null &&
		sudo -u tern tern --home /srv/peer peer add node '$node_id' &&
		sudo -u tern tern --home /srv/peer contact add node '$node_id' &&
		setsid -f sudo -u tern tern --home /srv/peer run --listen 127.0.0.1:4557 --listen [::1]:4557 \
			</dev/null >/srv/peer.log 2>&1"
	peer_id=$(in_box sudo -u tern tern --home /srv/peer id 2>/dev/null | head -n 1)
	check "tern peer add peer ... --addr localhost:4557, as tern" \
		in_box sudo -u tern tern --home $home peer add peer "$peer_id" --addr localhost:4557
	check "tern contact add peer" in_box sudo -u tern tern --home $home contact add peer "$peer_id"
	check "systemctl reload tern" in_box systemctl reload tern
	check "tern send peer -m ..." in_box sudo -u tern tern --home $home send peer -m "Through the service."
	for _ in $(seq 100); do
		in_box sudo -u tern tern --home /srv/peer inbox 2>/dev/null | grep -q text && break
		sleep 0.2
	done
	check "the service delivered it over TCP to the peer's inbox" \
		bash -c "nsenter -t $leader -a sudo -u tern tern --home /srv/peer inbox | grep -q text"
	check "systemctl stop tern" in_box systemctl stop tern
	same "it stopped cleanly (exit 0)" "ExecMainStatus=0 Result=success" \
		"$(in_box systemctl show -p ExecMainStatus -p Result tern | sort | tr '\n' ' ' | sed 's/ $//')"
	in_box journalctl --sync
	journal=$(in_box journalctl -u tern -b --no-pager -o cat 2>&1)
	echo "$journal" | sed 's/^/    | /'
	check "the journal has SIGHUP's reload" grep -q 'SIGHUP' <<<"$journal"
	check "the journal has the link to the peer" grep -q 'peer: link up' <<<"$journal"
	check "the journal says it stopped" grep -q '^stopped' <<<"$journal"
	check "the journal keeps the priorities (info is 6)" bash -c \
		"nsenter -t $leader -a journalctl -u tern -b -o json --no-pager | grep -q '\"PRIORITY\":\"6\"'"
	kill -TERM "$nspawn"
	timeout 60 tail --pid="$nspawn" -f /dev/null || kill -KILL "$nspawn"
	wait "$nspawn" 2>/dev/null
	nspawn=""
	mount_api || die "mounting /proc, /sys and /dev/pts in the chroot again"
fi

# --- purge ---------------------------------------------------------------------------------

echo "== purge"
apt_get purge tern || not_ok "apt-get purge tern failed"
purged=$(in_root dpkg-query -W -f='${Status}' tern 2>/dev/null)
case $purged in
"" | *not-installed) ok "dpkg: tern purged" ;;
*) not_ok "dpkg: tern purged: its status is $purged" ;;
esac
check "purge: postrm says it deleted the node" grep -q "deleted the node in $home" "$work/apt.log"
gone "purge: the node home $home is deleted" $home
gone "purge: /etc/tern is deleted" /etc/tern
gone "purge: the unit's enablement is gone" /etc/systemd/system/multi-user.target.wants/tern.service
check "purge: the system user stays (docs/debian.md: its uid may own files elsewhere)" \
	in_root getent passwd tern

echo "== install after purge: a new node"
apt_get install "/tmp/debs/$(basename "$deb2")" || die "apt-get install after purge failed"
check "postinst created a node again" grep -q "created a tern node in $home" "$work/apt.log"
id_after=$(tern_id)
if [ -n "$id_after" ] && [ "$id_after" != "$id_before" ]; then
	ok "a new identity, not the purged one"
else
	not_ok "after purge and install, the identity is the purged one (or none): $id_after"
fi
same "node home owner and mode" "tern:tern 700" "$(perms $home)"
check "the default tern.conf is back" grep -qx '#log-level = info' "$root/etc/tern/tern.conf"
apt_get purge tern || not_ok "the last apt-get purge tern failed"
gone "purged again: the node home is deleted" $home

echo "$((checks - failed)) passed, $failed failed ($((SECONDS - started))s)"
[ $failed -eq 0 ]
