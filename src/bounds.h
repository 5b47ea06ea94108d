/*
 * bounds.h - every input limit of coffre, each with its reason (after
 * SQLite's sqliteLimit.h).  Lengths are raw UTF-8 bytes, measured before any
 * normalisation or escaping.  Tests check each at N-1, N and N+1.
 */
#ifndef COFFRE_BOUNDS_H
#define COFFRE_BOUNDS_H

/* Person names: the longest French civil-status names stay far below. */
#define NAME_MAX_BYTES        256
/* Postal address on one line (AAF joins lines with '$'): 4 lines of 38
 * characters by the postal norm, with room for accents. */
#define ADDRESS_MAX_BYTES     512
/* RFC 5321: a forward path is at most 256 octets including <>. */
#define EMAIL_MAX_BYTES       254
/* E.164 is 15 digits; spaces and '+' allowed on input. */
#define PHONE_MAX_BYTES       32
/* Staff function label, class label, relationship label. */
#define LABEL_MAX_BYTES       128
/* Establishment official name. */
#define ESTABLISHMENT_NAME_MAX_BYTES 256
/* ISO date YYYY-MM-DD. */
#define DATE_BYTES            10
/* Birth years accepted: pupils, guardians and staff alive today. */
#define BIRTH_YEAR_MIN        1900
#define BIRTH_YEAR_MAX        2100

/* Identifiers (DOMAIN.md section 2). */
#define INE_BYTES             11
#define UAI_BYTES             8
#define ACADEMIE_CODE_BYTES   2
/* Compartments a keyring may hold: there are fewer than 40 académies. */
#define KEYRING_MAX_COMPARTMENTS 64
/* A keyring file is a few lines per compartment. */
#define KEYRING_FILE_MAX_BYTES (64 * 1024)

/* A record's sealed fields, all together, fit one page-sized blob. */
#define RECORD_FIELDS_MAX_BYTES 4096
/* One field's plaintext after normalisation (case folding may grow text). */
#define RECORD_FIELD_PT_MAX   1024
/* Fields a record kind may have. */
#define RECORD_MAX_FIELDS     8

/* Key rotation re-seals this many rows per transaction, so readers and
 * writers are never blocked long and a crash loses at most one batch of
 * progress (never data). */
#define RESEAL_BATCH_DEFAULT  1000
#define RESEAL_BATCH_MAX      100000

/* demo-data: bounded so a typo cannot fill the disk. */
#define DEMO_MAX_ESTABLISHMENTS 10000
#define DEMO_MAX_STUDENTS_PER   100000

/* Command-line values. */
#define CLI_ARG_MAX_BYTES     4096

#endif
