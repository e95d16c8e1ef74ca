// saver.h — the stage leader's record files filled off the critical path: the pipeline hands each
// module's record to a saver thread, which encodes it into the layer's record file
// (qs_qrecord_save: compacting the codes, copying into the safetensors writer) while the engine goes
// on with the next module; qs_qsaver_drain waits until every handed record is in. At most
// QS_QSAVER_DEPTH records wait; submit blocks beyond that (memory stays bounded).
#ifndef QS_SAVER_H
#define QS_SAVER_H

#include "io/safetensors.h"
#include "quant/record.h"

#define QS_QSAVER_DEPTH 2

struct qs_qsaver;
qs_status qs_qsaver_init(struct qs_qsaver **s);
// rec is moved into the saver (*rec is zeroed): the saver writes it into w and frees it (a lent
// record goes back through its release callback). w must stay valid until the next drain.
qs_status qs_qsaver_submit(struct qs_qsaver *s, struct qs_st_writer *w, struct qs_qrecord *rec);
// Waits until every submitted record is written; returns the first failure since the last drain.
qs_status qs_qsaver_drain(struct qs_qsaver *s);
void qs_qsaver_free(struct qs_qsaver *s);

#endif
