# Twelfth session, second run: the qgemv_layouts bench with x quantized inside the workgroup.
set -u
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
f=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; [ -f $f ] && export VK_DRIVER_FILES=$f
export XDG_RUNTIME_DIR=/tmp
cd .bench && xz -d -k -f qgemv_layouts.xz && chmod +x qgemv_layouts
for i in 1 2; do timeout 200 ./qgemv_layouts 2>&1 | tee -a $OUT/layouts12b.txt | grep -v "blockcols\|x in registers\|warp 4\|warp 2\|int8 x, 2"; done
