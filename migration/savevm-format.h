/*
 * The QEMU v3 stream's constants, shared by the save side
 * (migration/savevm.c) and the load side (migration/loadvm.c), so that
 * one can be checked against the other.  docs/interop/snapshot-format.md
 * has the bytes.
 */
#ifndef MIGRATION_SAVEVM_FORMAT_H
#define MIGRATION_SAVEVM_FORMAT_H

#define QEMU_VM_FILE_MAGIC          0x5145564d  /* "QEVM" */
#define QEMU_VM_FILE_VERSION        0x00000003

#define QEMU_VM_EOF                 0x00
#define QEMU_VM_SECTION_START       0x01
#define QEMU_VM_SECTION_PART        0x02
#define QEMU_VM_SECTION_END         0x03
#define QEMU_VM_SECTION_FULL        0x04
#define QEMU_VM_SUBSECTION          0x05
#define QEMU_VM_VMDESCRIPTION       0x06
#define QEMU_VM_CONFIGURATION       0x07
#define QEMU_VM_SECTION_FOOTER      0x7e

/* Section ids: RAM first, then the devices in registry order. */
#define RAM_SECTION_ID              0
#define DEVICE_SECTION_ID(index)    (1 + (index))

/* QEMU's configuration subsection for capabilities both sides need. */
#define CONFIG_CAPS_SUBSECTION      "configuration/capabilities"
#define CONFIG_CAPS_VERSION         1
#define CONFIG_CAPS_MAX             64

/* Far above what we write (a few KiB); bounds what a bad stream costs. */
#define MAX_DESCRIPTION_BYTES       (16 * MiB)
#define MAX_MACHINE_TYPE_BYTES      255

#endif
