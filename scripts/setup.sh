#!/usr/bin/env bash
# Makes sure a Vulkan driver exists for wgpu. On a machine without a GPU this installs Mesa's
# lavapipe (a conformant software Vulkan driver); on a machine with a GPU driver it does nothing.
set -euo pipefail
if ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "kiln setup: no Vulkan driver found; installing Mesa's software driver (mesa-vulkan-drivers)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
else
    echo "kiln setup: no Vulkan driver found. Install your GPU's Vulkan driver, or Mesa's lavapipe" >&2
    echo "(package mesa-vulkan-drivers on Debian/Ubuntu, mesa-vulkan-drivers on Fedora)." >&2
    exit 1
fi
