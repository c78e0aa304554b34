#!/bin/sh
# The lab image's entrypoint (deploy/lab.Dockerfile). The jupyter service runs as the host's uid, which has no
# entry in the image's /etc/passwd. The JVM reads the user's name and home from there, never from $HOME, and
# both break for such a uid: user.home is `?` (Ivy: "basedir must be absolute: ?/.ivy2.5.2/local") and Hadoop's
# login fails ("Invalid UID, could not determine effective user"), so no SparkSession starts (lesson 03).
# nss_wrapper gives that uid an entry, with HOME as its home, without making /etc/passwd writable.
set -eu
uid="$(id -u)"
if ! getent passwd "$uid" >/dev/null; then
  passwd="$(mktemp)"
  cat /etc/passwd > "$passwd"
  echo "lab-$uid:x:$uid:$(id -g):lab:${HOME:-/home/lab}:/bin/sh" >> "$passwd"
  export LD_PRELOAD=libnss_wrapper.so NSS_WRAPPER_PASSWD="$passwd" NSS_WRAPPER_GROUP=/etc/group
fi
exec "$@"
