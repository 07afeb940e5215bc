"""Caffe's config messages (NetParameter, LayerParameter, SolverParameter, BlobProto, ...).

`caffe_pb2` is generated from caffe.proto in this folder (package `stn_caffe`, Caffe's field
names and numbers, plus the STN forks' st_param and filler `file`). Regenerate it after
editing caffe.proto, from the repository root:

    pip install grpcio-tools==1.63.0    # protoc 26.1: the gencode imports under protobuf >= 5.26.1
    python -m grpc_tools.protoc -I python --python_out=python python/stn/proto/caffe.proto
"""

from . import caffe_pb2

__all__ = ["caffe_pb2"]
