#!/usr/bin/env bash
# Builds the onestack guest image, the small test image that plays CirrOS's
# part: Debian's cloud kernel, busybox and dropbear, an init that takes DHCP,
# reads OpenStack metadata (metadata service or config drive), installs SSH
# keys, sets the hostname, runs user data and prints a READY line on the
# serial console.
#
#   images/build.sh [--reuse] [OUTDIR]      (default: images/out)
#
# --reuse: keep OUTDIR's image when its manifest was built from the same
# inputs (this script, packages.lock, boot/, rootfs/, SOURCE_DATE_EPOCH) with
# every pin honoured, and its files still match their checksums.
#
# Writes OUTDIR/onestack-guest.{qcow2,raw} (BIOS-bootable disk: MBR, FAT boot
# partition with SYSLINUX + kernel + initrd, ext4 root), the kernel and initrd
# alone for direct boots, and onestack-guest.json (checksums, sizes, versions,
# recommended Glance properties).
#
# Everything in the image comes from the Debian packages pinned in
# packages.lock, fetched with `apt-get download` into a cache
# (${ONESTACK_IMAGE_CACHE:-~/.cache/onestack/images}) and unpacked with
# `dpkg-deb -x`: nothing is installed on the host and nothing is mounted, so
# no root is needed (except for apt-get update when the package lists are
# missing). Fixed UUIDs, labels, volume ids, mtimes and ordering make the
# output byte-identical from the same inputs and host tools.
#
# Environment:
#   ONESTACK_IMAGE_CACHE   where downloaded .debs are kept
#   ONESTACK_IMAGE_STRICT  1: fail when a pinned version is gone from the
#                          archive, instead of building with the current one
#   SOURCE_DATE_EPOCH      timestamp for every file (default below)
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
reuse=
if [ "${1:-}" = --reuse ]; then
	reuse=1
	shift
fi
out=${1:-$here/out}
cache=${ONESTACK_IMAGE_CACHE:-${HOME:-/root}/.cache/onestack/images}
strict=${ONESTACK_IMAGE_STRICT:-0}
t0=$(date +%s%N)

IMAGE_NAME=onestack-guest
IMAGE_VERSION=0.1.0
# Bumped with IMAGE_VERSION; every file in the image carries this time.
: "${SOURCE_DATE_EPOCH:=1764028800}"
export SOURCE_DATE_EPOCH
# The login users, as name:uid:password. The first is the default user: `cirros`,
# as in upstream's CirrOS, so that guides and tests written for CirrOS log in
# unchanged; `onestack` is kept for this image's earlier users. The metadata's
# keys go to each of them and to root. Passwords are for the console only:
# dropbear runs with -s (keys only).
GUEST_USERS=(cirros:1000:gocubsgo onestack:1001:onestack)
GUEST_USER=${GUEST_USERS[0]%%:*}
GUEST_PASSWORD=${GUEST_USERS[0]##*:}
PASSWORD_SALT=0nestackguest
ROOT_LABEL=onestack-root
ROOT_UUID=0e57ac00-0000-4000-8000-000000000001
ROOT_HASH_SEED=0e57ac00-0000-4000-8000-000000000002
BOOT_LABEL=ONESTACKBT
BOOT_VOLID=0e57ac01
DISK_ID=0x0e57ac02
BOOT_MIB=32
ROOT_MIB=64
# Loadable modules the guest needs (dependencies are added by the build;
# those built into the cloud kernel, like ext4, are skipped). The cloud kernel
# has neither e1000 nor AHCI: see README.md.
MODULES=(
	virtio_pci virtio_mmio virtio_blk virtio_net virtio_scsi virtio_console
	virtio_rng virtio_balloon vmxnet3
	ata_piix sd_mod sr_mod isofs vfat nls_cp437 nls_ascii nls_utf8 nls_iso8859_1
	button evdev
)

say() { printf '[image] %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

# What the build reads, for caches keyed on it (the README is not an input).
inputs_sha256=$(
	cd "$here"
	{
		echo "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
		find build.sh packages.lock boot rootfs -type f | sort | xargs sha256sum
	} | sha256sum | cut -d ' ' -f 1
)

manifest_is_current() {
	local m=$out/$IMAGE_NAME.json path sum n=0
	[ -f "$m" ] || return 1
	grep -q "\"inputs_sha256\": \"$inputs_sha256\"" "$m" || return 1
	grep -q '"pins_honoured": true' "$m" || return 1
	while read -r path sum; do
		[ -f "$out/$path" ] && [ "$(sha256sum <"$out/$path" | cut -d ' ' -f 1)" = "$sum" ] || return 1
		n=$((n + 1))
	done < <(sed -n 's/.*"path": "\([^"]*\)".*"sha256": "\([0-9a-f]*\)".*/\1 \2/p' "$m")
	[ $n -ge 2 ]
}
if [ -n "$reuse" ] && manifest_is_current; then
	say "$out/$IMAGE_NAME.qcow2 is up to date (inputs $inputs_sha256)"
	exit 0
fi

for tool in apt-get dpkg-deb cpio gzip mke2fs debugfs e2fsck mkfs.vfat mcopy mattrib mmove sfdisk qemu-img sha256sum flock; do
	command -v "$tool" >/dev/null || die "$tool not found: run scripts/setup.sh run (or apt-get install cpio e2fsprogs dosfstools mtools fdisk qemu-utils)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/onestack-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
pkg=$work/pkg
root=$work/root
img=$work/img
mkdir -p "$pkg" "$root" "$img" "$cache/debs"

# ---------------------------------------------------------------- packages
# apt's file name for a version: the epoch's colon is escaped; any architecture.
find_deb() { # NAME VERSION
	local f
	for f in "$cache/debs/${1}_${2//:/%3a}_"*.deb; do [ -f "$f" ] && echo "$f" && return 0; done
	return 1
}
apt_opts=(-q)
[ "$(id -u)" -eq 0 ] && apt_opts+=(-o APT::Sandbox::User=root)
apt_download() { # NAME VERSION
	(cd "$cache/debs" && apt-get "${apt_opts[@]}" download "$1=$2" >/dev/null 2>"$work/apt.err") && return 0
	if [ "$(id -u)" -eq 0 ] && [ -z "${apt_updated:-}" ]; then
		apt_updated=1
		say "apt-get download $1=$2 failed; refreshing the package lists"
		apt-get -q update >/dev/null 2>&1 || true
		(cd "$cache/debs" && apt-get "${apt_opts[@]}" download "$1=$2" >/dev/null 2>"$work/apt.err") && return 0
	fi
	return 1
}
# The archive keeps only the newest version of each package, so a pin dies
# with the next security update. Unless strict, build with the current version
# (following the metapackage for the kernel, whose package name carries its ABI)
# and say loudly that the image is not the pinned one.
current_version() { # NAME [METAPACKAGE] -> "NAME VERSION"
	local dep
	if [ -n "${2:-}" ]; then
		dep=$(apt-cache show --no-all-versions "$2" 2>/dev/null | sed -n 's/^Depends: //p' | head -n 1)
		printf '%s %s\n' "${dep%% *}" "$(sed -n 's/.*(= \([^)]*\)).*/\1/p' <<<"$dep")"
	else
		printf '%s %s\n' "$1" "$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }')"
	fi
}

pins_honoured=true
packages_json=
kernel_pkg=
exec 9>"$cache/.lock"
flock 9
while read -r name version sha meta; do
	case $name in '' | '#'*) continue ;; esac
	file=$(find_deb "$name" "$version") || {
		say "downloading $name $version"
		apt_download "$name" "$version" && file=$(find_deb "$name" "$version") || file=
	}
	if [ -n "$file" ]; then
		got=$(sha256sum <"$file" | cut -d ' ' -f 1)
		[ "$got" = "$sha" ] || die "$file: sha256 $got, packages.lock pins $sha"
	else
		[ "$strict" = 1 ] && die "$name $version is no longer in the archive (ONESTACK_IMAGE_STRICT=1): $(cat "$work/apt.err")"
		read -r cur_name cur_version < <(current_version "$name" "$meta")
		[ -n "$cur_version" ] || die "$name: neither the pinned $version nor any other version is available: $(cat "$work/apt.err")"
		say "WARNING: $name $version is gone from the archive; using $cur_name $cur_version. The image is not the pinned one: update images/packages.lock."
		pins_honoured=false
		name=$cur_name
		version=$cur_version
		file=$(find_deb "$name" "$version") || { apt_download "$name" "$version" && file=$(find_deb "$name" "$version"); } ||
			die "cannot download $name $version: $(cat "$work/apt.err")"
		sha=$(sha256sum <"$file" | cut -d ' ' -f 1)
	fi
	dpkg-deb -x "$file" "$pkg/$name"
	case $name in linux-image-*) kernel_pkg=$name ;; esac
	packages_json+="${packages_json:+,}
    {\"name\": \"$name\", \"version\": \"$version\", \"sha256\": \"$sha\"}"
done <"$here/packages.lock"
flock -u 9
[ -n "$kernel_pkg" ] || die "packages.lock has no linux-image package"
kver=${kernel_pkg#linux-image-}
bb=$pkg/busybox-static/bin/busybox

# ---------------------------------------------------------------- root tree
say "assembling the root file system (kernel $kver)"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/lib,lib/x86_64-linux-gnu,lib64,etc/dropbear} \
	"$root"/{dev,proc,sys,run,tmp,mnt/config,newroot,root,var/lib/onestack,var/log}
for u in "${GUEST_USERS[@]}"; do mkdir -p "$root/home/${u%%:*}"; done
ln -s ../run "$root/var/run"

install -m 755 "$bb" "$root/bin/busybox"
while read -r applet; do
	case $applet in linuxrc | bin/busybox) continue ;; esac
	[ -e "$root/$applet" ] || [ -L "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done < <("$bb" --list-full | sort)

install -m 755 "$pkg/dropbear-bin/usr/sbin/dropbear" "$root/usr/sbin/dropbear"
install -m 755 "$pkg/dropbear-bin/usr/bin/dropbearkey" "$pkg/dropbear-bin/usr/bin/dbclient" "$root/usr/bin/"
ln -s dbclient "$root/usr/bin/ssh"

# Shared libraries: the closure as the packaged loader resolves it against
# the unpacked packages only, never the host's libraries.
libpath=$(find "$pkg" -type d -path '*/lib/x86_64-linux-gnu' | sort | paste -sd :)
loader=$pkg/libc6/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
for exe in "$root/usr/sbin/dropbear" "$root/usr/bin/dropbearkey" "$root/usr/bin/dbclient"; do
	"$loader" --library-path "$libpath" --list "$exe"
done | awk '$2 == "=>" { print $3 }' | sort -u >"$work/libs"
while read -r lib; do
	case $lib in "$pkg"/*) ;; *) die "library $lib resolved outside the unpacked packages" ;; esac
	cp -L "$lib" "$root/lib/x86_64-linux-gnu/"
done <"$work/libs"
cp -L "$loader" "$root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"

# Kernel modules and their dependencies, from modules.dep made by busybox's
# depmod (the package's postinst would run kmod's).
kmod=$pkg/$kernel_pkg/lib/modules/$kver
"$bb" depmod -b "$pkg/$kernel_pkg" "$kver"
: >"$work/modules"
: >"$work/modfiles"
for m in "${MODULES[@]}"; do
	# A module's file may spell its name with dashes (virtio-rng.ko).
	re=${m//_/[-_]}
	line=$(grep -E "(^|/)$re\.ko:" "$kmod/modules.dep" || true)
	if [ -z "$line" ]; then
		grep -qE "(^|/)$re\.ko\$" "$kmod/modules.builtin" || die "module $m is neither loadable nor built into $kver"
		continue
	fi
	echo "$m" >>"$work/modules"
	tr -d ':' <<<"$line" | tr ' ' '\n' | grep . >>"$work/modfiles"
done
sort -u "$work/modfiles" | while read -r f; do
	mkdir -p "$root/lib/modules/$kver/$(dirname "$f")"
	cp "$kmod/$f" "$root/lib/modules/$kver/$f"
done
cp "$kmod/modules.builtin" "$kmod/modules.order" "$root/lib/modules/$kver/"
"$bb" depmod -b "$root" "$kver"
# busybox's depmod lists modules in readdir order, which differs between file systems.
for f in modules.dep modules.alias modules.symbols; do
	[ -f "$root/lib/modules/$kver/$f" ] && sort -o "$root/lib/modules/$kver/$f" "$root/lib/modules/$kver/$f"
done

cp -R "$here/rootfs/." "$root/"
{
	echo "# Loaded in this order by /init and rcS; written by images/build.sh for $kver."
	cat "$work/modules"
} >"$root/etc/modules"
ln -s ../run/resolv.conf "$root/etc/resolv.conf"
days=$((SOURCE_DATE_EPOCH / 86400))
{
	echo "root:*:$days:0:99999:7:::"
	for u in "${GUEST_USERS[@]}"; do
		echo "${u%%:*}:$("$bb" mkpasswd -m sha512 "${u##*:}" "$PASSWORD_SALT"):$days:0:99999:7:::"
	done
	echo "nobody:*:$days:0:99999:7:::"
} >"$root/etc/shadow"
cat >"$root/etc/os-release" <<EOF
NAME="onestack guest"
ID=onestack-guest
VERSION_ID=$IMAGE_VERSION
PRETTY_NAME="onestack guest $IMAGE_VERSION (Debian 12 packages, kernel $kver)"
EOF

# Modes from the rule, not from the checkout's umask; then the exceptions.
find "$root" -type d -exec chmod 755 {} +
find "$root" -type f -perm /111 -exec chmod 755 {} +
find "$root" -type f ! -perm /111 -exec chmod 644 {} +
chmod 600 "$root/etc/shadow"
chmod 700 "$root/root"
chmod 1777 "$root/tmp"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
# The debugfs commands below carry paths unquoted: only names that need no quoting.
bad=$(cd "$root" && { find . | grep -E '[^][A-Za-z0-9._+/@,-]' || true; })
[ -z "$bad" ] || die "unexpected characters in file names: $bad"

# ---------------------------------------------------------------- initramfs
say "initramfs"
(cd "$root" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9 -n >"$img/initrd.img"
cp "$pkg/$kernel_pkg/boot/vmlinuz-$kver" "$img/vmlinuz"
touch -d "@$SOURCE_DATE_EPOCH" "$img/vmlinuz" "$img/initrd.img"

# ---------------------------------------------------------------- ext4 root
# Our own mke2fs.conf instead of the host's, so that the host's defaults
# cannot change the file system.
say "ext4 root file system"
cat >"$work/mke2fs.conf" <<'EOF'
[defaults]
	blocksize = 4096
	inode_size = 256
[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,dir_nlink,extra_isize
	}
	default = {
	}
EOF
export MKE2FS_CONFIG=$work/mke2fs.conf E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH
mke2fs -q -F -t ext4 -T default -N 4096 -m 0 -J size=4 -O ^64bit,^resize_inode \
	-L "$ROOT_LABEL" -U "$ROOT_UUID" -E "hash_seed=$ROOT_HASH_SEED,root_owner=0:0,lazy_itable_init=0" \
	-d "$root" "$img/root.img" "${ROOT_MIB}M" >/dev/null
# mke2fs -d copies each file's owner and ctime from the build tree, which
# depend on who built it and when: set both for every inode.
{
	(cd "$root" && find . | sort) | while read -r p; do
		p=${p#.}
		p=${p:-/}
		owner=0
		for u in "${GUEST_USERS[@]}"; do
			name=${u%%:*} uid=${u#*:}
			case $p in "/home/$name" | "/home/$name"/*) owner=${uid%%:*} ;; esac
		done
		for f in atime ctime mtime crtime; do echo "sif $p $f @$SOURCE_DATE_EPOCH"; done
		echo "sif $p uid $owner"
		echo "sif $p gid $owner"
	done
	for f in atime ctime mtime crtime; do echo "sif /lost+found $f @$SOURCE_DATE_EPOCH"; done
} >"$work/debugfs.cmds"
debugfs -w -f "$work/debugfs.cmds" "$img/root.img" >/dev/null 2>"$work/debugfs.err"
if grep -v '^debugfs [0-9]' "$work/debugfs.err" | grep -q .; then
	die "debugfs: $(head -n 5 "$work/debugfs.err")"
fi
e2fsck -fn "$img/root.img" >"$work/e2fsck.out" 2>&1 || die "e2fsck: $(cat "$work/e2fsck.out")"
unset MKE2FS_CONFIG E2FSPROGS_FAKE_TIME

# ---------------------------------------------------------------- FAT boot
# SYSLINUX on FAT installs with mtools, where extlinux would need a mounted
# file system. mtools takes file times from SOURCE_DATE_EPOCH.
say "FAT boot partition"
mkfs.vfat -C --invariant -F 16 -h 2048 -i "$BOOT_VOLID" -n "$BOOT_LABEL" "$img/boot.img" $((BOOT_MIB * 1024)) >/dev/null
cp "$here/boot/syslinux.cfg" "$img/syslinux.cfg"
touch -d "@$SOURCE_DATE_EPOCH" "$img/syslinux.cfg"
mcopy -m -i "$img/boot.img" "$img/vmlinuz" "$img/initrd.img" "$img/syslinux.cfg" ::/
"$pkg/syslinux/usr/bin/syslinux" --install "$img/boot.img"

# ---------------------------------------------------------------- disk
say "disk"
disk=$img/disk.raw
truncate -s $((1 + BOOT_MIB + ROOT_MIB))M "$disk"
boot_start=2048
root_start=$((boot_start + BOOT_MIB * 2048))
sfdisk -q --no-reread --no-tell-kernel "$disk" >/dev/null <<EOF
label: dos
label-id: $DISK_ID
unit: sectors
start=$boot_start, size=$((BOOT_MIB * 2048)), type=e, bootable
start=$root_start, size=$((ROOT_MIB * 2048)), type=83
EOF
dd if="$pkg/syslinux-common/usr/lib/syslinux/mbr/mbr.bin" of="$disk" bs=440 count=1 conv=notrunc status=none
dd if="$img/boot.img" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$img/root.img" of="$disk" bs=1M seek=$((1 + BOOT_MIB)) conv=notrunc,sparse status=none
# One coroutine: clusters are then written in order, so the layout of the
# compressed qcow2 does not depend on scheduling.
qemu-img convert -q -m 1 -c -f raw -O qcow2 -o compression_type=zlib,cluster_size=65536 "$disk" "$img/disk.qcow2"

# ---------------------------------------------------------------- output
mkdir -p "$out"
cp --sparse=always "$disk" "$out/.$IMAGE_NAME.raw.tmp"
cp "$img/disk.qcow2" "$out/.$IMAGE_NAME.qcow2.tmp"
cp "$img/vmlinuz" "$out/.$IMAGE_NAME.vmlinuz.tmp"
cp "$img/initrd.img" "$out/.$IMAGE_NAME.initrd.tmp"
for ext in raw qcow2 vmlinuz initrd; do mv "$out/.$IMAGE_NAME.$ext.tmp" "$out/$IMAGE_NAME.$ext"; done

size() { stat -c %s "$1"; }
sum() { sha256sum <"$1" | cut -d ' ' -f 1; }
file_json() { # KEY FILE FORMAT
	printf '    "%s": {"path": "%s", "format": "%s", "size": %s, "sha256": "%s"}' \
		"$1" "$(basename "$2")" "$3" "$(size "$2")" "$(sum "$2")"
}
tool_version() { "$@" 2>&1 | head -n 1 | tr -d '\\"'; }
virtual_size=$(size "$disk")
cat >"$out/.$IMAGE_NAME.json.tmp" <<EOF
{
  "name": "$IMAGE_NAME",
  "version": "$IMAGE_VERSION",
  "kernel": "$kver",
  "virtual_size": $virtual_size,
  "source_date_epoch": $SOURCE_DATE_EPOCH,
  "inputs_sha256": "$inputs_sha256",
  "pins_honoured": $pins_honoured,
  "files": {
$(file_json qcow2 "$out/$IMAGE_NAME.qcow2" qcow2),
$(file_json raw "$out/$IMAGE_NAME.raw" raw),
$(file_json kernel "$out/$IMAGE_NAME.vmlinuz" bzImage),
$(file_json initrd "$out/$IMAGE_NAME.initrd" cpio.gz)
  },
  "default_user": "$GUEST_USER",
  "console_password": "$GUEST_PASSWORD",
  "root_label": "$ROOT_LABEL",
  "ready_line": "=== ONESTACK GUEST READY hostname=<hostname> ip=<ipv4|none> uuid=<uuid|none> metadata=<config-drive|metadata-service|none> uptime=<seconds>s ===",
  "glance": {
    "disk_format": "qcow2",
    "container_format": "bare",
    "min_disk": 1,
    "min_ram": 128,
    "properties": {
      "architecture": "x86_64",
      "hw_disk_bus": "virtio",
      "hw_vif_model": "virtio",
      "hw_machine_type": "pc",
      "hw_cdrom_bus": "ide",
      "hw_firmware_type": "bios",
      "hw_rng_model": "virtio",
      "os_type": "linux",
      "os_distro": "$IMAGE_NAME",
      "os_version": "$IMAGE_VERSION"
    }
  },
  "packages": [$packages_json
  ],
  "host_tools": {
    "mke2fs": "$(tool_version mke2fs -V)",
    "mkfs.vfat": "$(tool_version mkfs.vfat --help)",
    "mtools": "$(tool_version mtools --version)",
    "sfdisk": "$(tool_version sfdisk --version)",
    "cpio": "$(tool_version cpio --version)",
    "gzip": "$(tool_version gzip --version)",
    "qemu-img": "$(tool_version qemu-img --version)"
  }
}
EOF
mv "$out/.$IMAGE_NAME.json.tmp" "$out/$IMAGE_NAME.json"

t1=$(date +%s%N)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
say "built in $(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", ns / 1e9 }') s:"
say "  $out/$IMAGE_NAME.qcow2  $(mib "$(size "$out/$IMAGE_NAME.qcow2")") (virtual $(mib "$virtual_size"))  sha256 $(sum "$out/$IMAGE_NAME.qcow2")"
say "  $out/$IMAGE_NAME.raw    $(mib "$virtual_size") ($(du -k "$out/$IMAGE_NAME.raw" | cut -f 1) KiB allocated)  sha256 $(sum "$out/$IMAGE_NAME.raw")"
say "  kernel $kver $(mib "$(size "$out/$IMAGE_NAME.vmlinuz")"), initrd $(mib "$(size "$out/$IMAGE_NAME.initrd")")"
[ "$pins_honoured" = true ] || say "  NOTE: built from newer packages than packages.lock pins (see the warnings above)"
