/* The MPI operations that sum bf16 and f16 buffers (held as MPI_UINT16_T), which MPI has no type
 * for: each addition widens both operands to f32 and rounds the sum back (comm_reduce.h). */
#ifndef SHARDLAB_IMPL_COMM_MPI_OPS_H
#define SHARDLAB_IMPL_COMM_MPI_OPS_H

#include <mpi.h>

#include "shardlab/dtype.h"
#include "shardlab/status.h"

/* Created once MPI is initialised, freed before it is finalised. */
sl_status sl_comm_mpi_ops_create(void);
void sl_comm_mpi_ops_free(void);

/* The element type and the SUM operation a buffer of dt is reduced with. */
MPI_Datatype sl_comm_mpi_type(sl_dtype dt);
MPI_Op sl_comm_mpi_sum(sl_dtype dt);

#endif
