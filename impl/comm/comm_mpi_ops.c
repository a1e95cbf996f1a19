/* User-defined MPI sums for bf16 and f16. They are declared commutative — a + b and b + a round
 * alike — which lets MPI pick its fast algorithms; the order of additions is then MPI's, which is
 * what native mode means (deterministic mode never uses them). */
#include "impl/comm/comm_mpi_ops.h"

#include "impl/comm/comm_reduce.h"

static MPI_Op sl_mpi_sum_bf16 = MPI_OP_NULL;
static MPI_Op sl_mpi_sum_f16 = MPI_OP_NULL;

static void sl_mpi_add_bf16(void *in, void *inout, int *len, MPI_Datatype *type) {
    (void)type;
    sl_comm_sum_into(inout, in, (size_t)*len, SL_DTYPE_BF16);
}

static void sl_mpi_add_f16(void *in, void *inout, int *len, MPI_Datatype *type) {
    (void)type;
    sl_comm_sum_into(inout, in, (size_t)*len, SL_DTYPE_F16);
}

sl_status sl_comm_mpi_ops_create(void) {
    if (MPI_Op_create(sl_mpi_add_bf16, 1, &sl_mpi_sum_bf16) != MPI_SUCCESS ||
        MPI_Op_create(sl_mpi_add_f16, 1, &sl_mpi_sum_f16) != MPI_SUCCESS) {
        sl_comm_mpi_ops_free();
        return sl_error_set(SL_ERR_INTERNAL, "MPI_Op_create failed for the bf16/f16 sums");
    }
    return SL_OK;
}

void sl_comm_mpi_ops_free(void) {
    if (sl_mpi_sum_bf16 != MPI_OP_NULL) MPI_Op_free(&sl_mpi_sum_bf16);
    if (sl_mpi_sum_f16 != MPI_OP_NULL) MPI_Op_free(&sl_mpi_sum_f16);
}

MPI_Datatype sl_comm_mpi_type(sl_dtype dt) {
    switch (dt) {
    case SL_DTYPE_F32: return MPI_FLOAT;
    case SL_DTYPE_BF16:
    case SL_DTYPE_F16: return MPI_UINT16_T;
    case SL_DTYPE_F64: return MPI_DOUBLE;
    case SL_DTYPE_I32: return MPI_INT32_T;
    case SL_DTYPE_I64: return MPI_INT64_T;
    case SL_DTYPE_COUNT: break;
    }
    return MPI_DATATYPE_NULL;
}

MPI_Op sl_comm_mpi_sum(sl_dtype dt) {
    if (dt == SL_DTYPE_BF16) return sl_mpi_sum_bf16;
    if (dt == SL_DTYPE_F16) return sl_mpi_sum_f16;
    return MPI_SUM;
}
