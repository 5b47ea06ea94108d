/*
 * ids.h - French school identifiers: INE (pupil), UAI (establishment) and
 * académie codes (DOMAIN.md section 2).
 *
 * Every function here is pure: it allocates nothing, mutates no global and
 * writes its output only on success.  Error messages name the field and the
 * reason and never echo the value, which may be a pupil's identifier.
 */
#ifndef COFFRE_IDS_H
#define COFFRE_IDS_H

#include <stddef.h>

#include "bounds.h"
#include "err.h"

/*
 * Raw input accepted by the parsers, surrounding spaces included: an
 * identifier padded by a spreadsheet cell fits; anything longer is not an
 * identifier and is refused before it is looked at.
 */
#define IDS_INPUT_MAX_BYTES 64

enum ine_kind { INE_BEA, INE_BASE36, INE_RNIE, INE_APPRENTI };

struct ine {
    char s[INE_BYTES + 1];  /* upper-case canonical form, NUL-terminated */
    enum ine_kind kind;
    int checked;            /* 1 when a check character was verified, 0 for
                             * format-only kinds (RNIE, apprentissage) */
};

struct uai {
    char s[UAI_BYTES + 1];  /* 7 digits + check letter, NUL-terminated */
};

/*
 * Parses an INE.  s need not be NUL-terminated; len is its length.  Input
 * longer than IDS_INPUT_MAX_BYTES or holding a NUL or control byte is
 * refused first; then surrounding ASCII spaces are trimmed and letters
 * upper-cased.  Dispatch on the 11 remaining characters:
 *   10 digits + letter not in I,O,Q  -> INE_BEA, mod-23 check letter
 *   9 digits + 2 letters             -> INE_RNIE, format only
 *   ^[0-9]{4}A[0-9]{5}[A-Z]$         -> INE_APPRENTI, format only
 *   11 alphanumerics, last a digit   -> INE_BASE36, esup CheckNNE36 digit
 * Anything else is invalid.  On error returns CF_ERR_INPUT, fills em (if
 * non-NULL) with one line that never holds the input, and leaves *out
 * untouched.
 */
enum cf_err ids_parse_ine(const char *s, size_t len, struct ine *out,
                          struct cf_errmsg *em) WARN_UNUSED;

/*
 * Parses a UAI: 7 digits + check letter A23[n mod 23] with
 * A23 = "ABCDEFGHJKLMNPRSTUVWXYZ".  Same input, trimming, upper-casing and
 * error rules as ids_parse_ine.
 */
enum cf_err ids_parse_uai(const char *s, size_t len, struct uai *out,
                          struct cf_errmsg *em) WARN_UNUSED;

/*
 * Parses an académie code: two digits naming a known académie (DOMAIN.md
 * 2.3).  out gets the 2-character code + NUL.  Same input and error rules
 * as ids_parse_ine.
 */
enum cf_err ids_parse_academie(const char *s, size_t len,
                               char out[ACADEMIE_CODE_BYTES + 1],
                               struct cf_errmsg *em) WARN_UNUSED;

/* Name of the académie with this NUL-terminated code (static UTF-8 string);
 * NULL if code is NULL or unknown. */
const char *ids_academie_name(const char *code);

/* Number of known académies. */
size_t ids_academie_count(void);

/* Code of the i-th académie, ordered by code (static string); NULL when
 * i >= ids_academie_count(). */
const char *ids_academie_code_at(size_t i);

/*
 * Check characters, for the synthetic data generator.
 * ids_make_uai writes the full 8-character UAI (+NUL) for n in 0..9999999;
 * ids_make_ine_bea writes the full 11-character INE-BEA (+NUL) for n in
 * 0..9999999999.  Both return CF_ERR_INPUT, writing nothing, when n is out
 * of range or out is NULL.
 */
enum cf_err ids_make_uai(unsigned long n, struct uai *out) WARN_UNUSED;
enum cf_err ids_make_ine_bea(unsigned long long n, struct ine *out) WARN_UNUSED;

/*
 * Lower-case ASCII for logins and e-mail local parts: common French accents
 * dropped (é -> e, ç -> c), spaces and apostrophes removed, other non-ASCII
 * characters skipped whole.  Always NUL-terminates out (cap >= 1).
 */
void ids_ascii_slug(const char *in, char *out, size_t cap);

#endif
