// ggml_types.c — the block sizes of ggml's types (ggml.c type_traits: blck_size, type_size).
#include "io/ggml_types.h"

#include <ctype.h>
#include <string.h>

static const struct {
  const char *name;
  int blck, size;
} k_types[QS_GGML_TYPE_MAX] = {
    [QS_GGML_F32] = {"F32", 1, 4},         [QS_GGML_F16] = {"F16", 1, 2},
    [QS_GGML_Q4_0] = {"Q4_0", 32, 18},     [QS_GGML_Q4_1] = {"Q4_1", 32, 20},
    [QS_GGML_Q5_0] = {"Q5_0", 32, 22},     [QS_GGML_Q5_1] = {"Q5_1", 32, 24},
    [QS_GGML_Q8_0] = {"Q8_0", 32, 34},     [QS_GGML_Q8_1] = {"Q8_1", 32, 36},
    [QS_GGML_Q2_K] = {"Q2_K", 256, 84},    [QS_GGML_Q3_K] = {"Q3_K", 256, 110},
    [QS_GGML_Q4_K] = {"Q4_K", 256, 144},   [QS_GGML_Q5_K] = {"Q5_K", 256, 176},
    [QS_GGML_Q6_K] = {"Q6_K", 256, 210},   [QS_GGML_Q8_K] = {"Q8_K", 256, 292},
    [QS_GGML_IQ2_XXS] = {"IQ2_XXS", 256, 66}, [QS_GGML_IQ2_XS] = {"IQ2_XS", 256, 74},
    [QS_GGML_IQ3_XXS] = {"IQ3_XXS", 256, 98}, [QS_GGML_IQ1_S] = {"IQ1_S", 256, 50},
    [QS_GGML_IQ4_NL] = {"IQ4_NL", 32, 18}, [QS_GGML_IQ3_S] = {"IQ3_S", 256, 110},
    [QS_GGML_IQ2_S] = {"IQ2_S", 256, 82},  [QS_GGML_IQ4_XS] = {"IQ4_XS", 256, 136},
    [QS_GGML_I8] = {"I8", 1, 1},           [QS_GGML_I16] = {"I16", 1, 2},
    [QS_GGML_I32] = {"I32", 1, 4},         [QS_GGML_I64] = {"I64", 1, 8},
    [QS_GGML_F64] = {"F64", 1, 8},         [QS_GGML_IQ1_M] = {"IQ1_M", 256, 56},
    [QS_GGML_BF16] = {"BF16", 1, 2},       [QS_GGML_TQ1_0] = {"TQ1_0", 256, 54},
    [QS_GGML_TQ2_0] = {"TQ2_0", 256, 66},  [QS_GGML_MXFP4] = {"MXFP4", 32, 17},
};

const char *qs_ggml_type_name(int type) {
  return type >= 0 && type < QS_GGML_TYPE_MAX ? k_types[type].name : NULL;
}
int qs_ggml_blck_size(int type) { return qs_ggml_type_name(type) ? k_types[type].blck : 0; }
int qs_ggml_type_size(int type) { return qs_ggml_type_name(type) ? k_types[type].size : 0; }

int qs_ggml_type_from_name(const char *name) {
  for (int t = 0; t < QS_GGML_TYPE_MAX; t++) {
    const char *s = k_types[t].name;
    if (!s || strlen(s) != strlen(name)) continue;
    size_t i = 0;
    while (name[i] && toupper((unsigned char)name[i]) == (unsigned char)s[i]) i++;
    if (!name[i]) return t;
  }
  return -1;
}

int64_t qs_ggml_row_size(int type, int64_t n) {
  int b = qs_ggml_blck_size(type);
  if (!b || n < 0 || n % b) return -1;
  return n / b * k_types[type].size;
}
