# Sourced first by the device scripts, from the repository root: installs the Vulkan loader
# from .gl/, points it at the NVIDIA driver, and enters the carried bench folder .bench/.
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .bench
