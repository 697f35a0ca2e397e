/*
 * The storage record decoders (storage/record.c): a value read from LMDB
 * may be anything a crash, a disk or an older or newer Coney left there.
 * The input goes through every rec_*_decode; a value one of them accepts
 * must encode back to exactly the same bytes, since a decoder consumes a
 * value exactly and every field has one encoding.
 */
#include "tests/fuzz/fuzz.h"

#include "storage/record.h"

#define ROUND_TRIP(name, decode_call, size_call, encode_call)       \
    do {                                                            \
        if ((decode_call) == 0) {                                   \
            size_t n_ = (size_call);                                \
            uint8_t *e_ = fuzz_alloc(n_);                           \
            encode_call;                                            \
            fuzz_same(name, data, size, e_, n_);                    \
            free(e_);                                               \
        }                                                           \
    } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    store_exchange x;
    ROUND_TRIP("exchange", rec_exchange_decode(data, size, &x),
               rec_exchange_size(&x), rec_exchange_encode(&x, e_));
    store_queue q;
    ROUND_TRIP("queue", rec_queue_decode(data, size, &q),
               rec_queue_size(&q), rec_queue_encode(&q, e_));
    store_binding b;
    ROUND_TRIP("binding", rec_binding_decode(data, size, &b),
               rec_binding_size(&b), rec_binding_encode(&b, e_));
    store_message m;
    ROUND_TRIP("message", rec_message_decode(data, size, &m),
               rec_message_size(&m), rec_message_encode(&m, e_));
    store_qentry qe;
    ROUND_TRIP("qentry", rec_qentry_decode(data, size, &qe),
               REC_QENTRY_LEN, rec_qentry_encode(qe.msg_id, qe.flags, e_));
    uint8_t hkey[16];
    ROUND_TRIP("hashkey", rec_hashkey_decode(data, size, hkey),
               REC_HASHKEY_LEN, rec_hashkey_encode(hkey, e_));
    store_kv kv;
    ROUND_TRIP("retained", rec_kv_decode(REC_RETAINED, data, size, &kv),
               rec_kv_size(&kv), rec_kv_encode(REC_RETAINED, &kv, e_));
    ROUND_TRIP("session", rec_kv_decode(REC_SESSION, data, size, &kv),
               rec_kv_size(&kv), rec_kv_encode(REC_SESSION, &kv, e_));
    store_vhost vh;
    ROUND_TRIP("vhost", rec_vhost_decode(data, size, &vh),
               rec_vhost_size(&vh), rec_vhost_encode(&vh, e_));
    store_user u;
    ROUND_TRIP("user", rec_user_decode(data, size, &u),
               rec_user_size(&u), rec_user_encode(&u, e_));
    store_permission p;
    ROUND_TRIP("permission", rec_permission_decode(data, size, &p),
               rec_permission_size(&p), rec_permission_encode(&p, e_));
    store_topic_permission tp;
    ROUND_TRIP("topic permission", rec_topic_permission_decode(data, size, &tp),
               rec_topic_permission_size(&tp), rec_topic_permission_encode(&tp, e_));
    store_policy po;
    ROUND_TRIP("policy", rec_policy_decode(REC_POLICY, data, size, &po),
               rec_policy_size(&po), rec_policy_encode(REC_POLICY, &po, e_));
    ROUND_TRIP("operator policy", rec_policy_decode(REC_OPERATOR_POLICY, data, size, &po),
               rec_policy_size(&po), rec_policy_encode(REC_OPERATOR_POLICY, &po, e_));

    /* the header check agrees with the decoders on the type octet */
    if (size >= 2) {
        int rc = rec_check_header(data, size, (enum rec_type)data[1]);
        FUZZ_CHECK(rc == 0 || rc == STORE_ECORRUPT || rc == STORE_EVERSION);
    }
    return 0;
}
