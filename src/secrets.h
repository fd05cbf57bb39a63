/* secrets.h - finding pieces of secret values (a token, a secret key, a password) in text a
 * server sent, so that eip.pipeline can redact them before anyone sees the text.
 *
 * A server may echo a credential whole, or a piece of it: cut short by a length bound, with its
 * start cut off, split between two fields. The index is the set of every 8-byte window of every
 * secret; a byte of a text is part of a piece when it lies in an 8-byte window of the text that
 * is in the set. So every piece of 8 bytes or more of any secret is found, wherever it starts,
 * in one pass over the text (one look-up per byte). So is every piece in hex (either case, from
 * any digit of a run of them): 16 digits that write 8 bytes the set holds. A secret shorter than
 * 8 bytes cannot be told apart from ordinary words inside a text: it is found only as the whole
 * text.
 *
 * The set takes about 13 bytes per byte of secret (8-byte slots, at most 5/8 full), and about
 * 10 times that for its first 512 bytes (their echoed forms: see eip_secrets_add); a secret
 * that repeats itself takes less (each window is kept once). The index keeps its own copies of
 * the secrets, and wipes them and the set when it is freed.
 */
#ifndef EIP_SECRETS_H
#define EIP_SECRETS_H

#include <stddef.h>

typedef struct eip_secrets eip_secrets;

/* An empty index for up to max_secrets secrets; NULL when out of memory. */
eip_secrets *eip_secrets_new(size_t max_secrets);

/* Adds a copy of secret (len bytes; an empty one is ignored). 0, or -1 when out of memory or
 * when max_secrets were added already. Secrets longer than EIP_SECRETS_INDEXED_MAX bytes (no
 * credential is: IAM tokens take a few KiB) are indexed over their first
 * EIP_SECRETS_INDEXED_MAX bytes. A secret of 8 bytes or more is found in the forms a server
 * may echo it in too, over its first EIP_SECRETS_DERIVED_MAX bytes: in lower or upper case
 * (ASCII), in base64 (standard or URL-safe, wherever it starts in the encoded text); and in hex
 * over all its indexed bytes (the hex of a form too: see eip_secrets_scan). */
#define EIP_SECRETS_INDEXED_MAX (1024u * 1024u)
#define EIP_SECRETS_DERIVED_MAX 512u
int eip_secrets_add(eip_secrets *x, const char *secret, size_t len);

/* A piece found: the byte range [from, to) of the text. */
typedef struct {
    size_t from, to;
} eip_range;

/* How many ranges eip_secrets_scan may write for a text of len bytes, at most. */
#define EIP_SECRETS_MAX_RANGES(len) ((len) / 8 + 2)

/* Writes into out the pieces of secrets in text[0..len), in increasing order, overlapping or
 * touching pieces merged; returns how many. A piece is 8 bytes of the text that the index holds
 * (a window), or 16 hex digits (of a run of them, either case, from any digit) that write one:
 * never 8 digits, 4 bytes, which request ids of 32 digits would match by chance now and then.
 * out NULL: only counts them (no write), so that a caller can size out to what a text holds
 * (the same count; EIP_SECRETS_MAX_RANGES(len) always suffices) instead of to the text's
 * length. */
size_t eip_secrets_scan(const eip_secrets *x, const char *text, size_t len, eip_range *out);

/* Whether text[0..len) holds any piece eip_secrets_scan would report. */
int eip_secrets_any(const eip_secrets *x, const char *text, size_t len);

/* Wipes the copies and frees the index (NULL is fine). */
void eip_secrets_free(eip_secrets *x);

#endif
