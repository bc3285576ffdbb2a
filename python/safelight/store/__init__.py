"""An encrypted image store: convergent encryption with server-aided keys (an OPRF key
server), deduplication, and near-duplicate lookup by keyed locality-sensitive tags.

The storage server keeps ciphertext blobs and an SQLite index (:mod:`.index`); the key
server evaluates an oblivious PRF (:mod:`.oprf`); the owner derives content keys and seals
files (:mod:`.convergent`).
"""
