#!/bin/sh
# Builds Fluent Bit from a source tree for the side-by-side rows of
# make bench (tail → kafka, kafka → es; nothing else is compiled).
# Fluent Bit is not packaged for Debian 12 and its sources are on no
# registry these machines reach, so the tree has to come from elsewhere
# (a git checkout of github.com/fluent/fluent-bit, tag v5.1.1 was used).
#
#   scripts/fluentbit-build.sh /path/to/fluent-bit-src
#   FLUENT_BIT=/path/to/fluent-bit-src/build/bin/fluent-bit make bench
set -eu
src=${1:?usage: $0 FLUENT_BIT_SOURCE_DIR}
command -v cmake >/dev/null && command -v flex >/dev/null && command -v bison >/dev/null || {
	echo "needs cmake, flex, bison, libssl-dev and libyaml-dev: apt-get install -y cmake flex bison libssl-dev libyaml-dev" >&2
	exit 1
}
mkdir -p "$src/build"
cd "$src/build"
cmake .. -DFLB_MINIMAL=On -DFLB_IN_TAIL=On -DFLB_IN_KAFKA=On -DFLB_OUT_KAFKA=On -DFLB_OUT_ES=On \
	-DFLB_OUT_NULL=On -DFLB_SQLDB=On -DFLB_HTTP_SERVER=On -DFLB_TLS=On -DFLB_RELEASE=On \
	-DFLB_EXAMPLES=Off -DFLB_SHARED_LIB=Off -DFLB_LUAJIT=Off -DFLB_WASM=Off -DFLB_BACKTRACE=Off
# 5.1.1 generates monkey's mk_core_info.h where the compile flags do not
# look: copy it there.
if [ -f include/monkey/mk_core/mk_core_info.h ]; then
	mkdir -p lib/monkey/include/monkey/mk_core
	cp include/monkey/mk_core/mk_core_info.h lib/monkey/include/monkey/mk_core/
fi
make -j"$(nproc)" fluent-bit-bin
echo "built $src/build/bin/fluent-bit"
