/*
 * The fuzz targets as plain functions, so that one source serves both the
 * libFuzzer binaries (tests/fuzz/fuzz-*.c with -Dfuzzing=true) and the
 * unit test that replays every corpus and regression file in every build
 * (tests/unit/test-fuzz-corpus.c).  Each takes any bytes, must never
 * crash, leak or hang, and returns 0.
 */
#ifndef FUZZ_TARGETS_H
#define FUZZ_TARGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A migration stream, through the loader in inspect mode (snapvm-img's). */
int fuzz_loadvm_one(const uint8_t *data, size_t size);
/* The same, loaded into machines as snapvm -incoming does. */
int fuzz_loadvm_machine_one(const uint8_t *data, size_t size);
/* How many of fuzz-loadvm-machine's machines took the whole stream. */
unsigned fuzz_loadvm_machine_count(const uint8_t *data, size_t size);
/*
 * Edits (4 bytes each) to a checksummed stream of a small machine: the
 * result is refused with a message or loads the guest that was saved.
 */
int fuzz_checksums_one(const uint8_t *data, size_t size);
/* Whether the edited stream loaded (into the same guest, or it aborts). */
bool fuzz_checksums_loaded(const uint8_t *data, size_t size);
/* Bytes a QMP client sends: JSON streamer, parser and dispatcher. */
int fuzz_qmp_one(const uint8_t *data, size_t size);

#endif
