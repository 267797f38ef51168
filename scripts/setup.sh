#!/usr/bin/env bash
# Makes sure a Vulkan driver exists for wgpu. On a machine without a GPU this installs Mesa's
# lavapipe (a conformant software Vulkan driver); on a machine with any Vulkan driver (an ICD
# manifest in one of the loader's search directories, or one named by VK_ICD_FILENAMES /
# VK_DRIVER_FILES) it does nothing, so machines without network keep working. `--check` only
# reports (exit 1 when no driver is found) and installs nothing.
set -euo pipefail

have_vulkan_driver() {
    local f dir
    for f in ${VK_ICD_FILENAMES//:/ } ${VK_DRIVER_FILES//:/ }; do
        [ -f "$f" ] && return 0
    done
    local dirs="/usr/share/vulkan/icd.d:/etc/vulkan/icd.d:/usr/local/share/vulkan/icd.d:${XDG_DATA_HOME:-${HOME:-}/.local/share}/vulkan/icd.d"
    # KILN_VULKAN_ICD_DIRS (colon-separated) replaces the search list, for tests.
    local IFS=:
    for dir in ${KILN_VULKAN_ICD_DIRS:-$dirs}; do
        # Each directory on its own: one empty directory must not hide another's drivers.
        for f in "$dir"/*.json; do
            [ -f "$f" ] && return 0
        done
    done
    return 1
}

VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-}
VK_DRIVER_FILES=${VK_DRIVER_FILES:-}
if have_vulkan_driver; then
    exit 0
fi
if [ "${1:-}" = "--check" ]; then
    echo "kiln setup: no Vulkan driver found" >&2
    exit 1
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
