"""gRPC servicers of `batchgrpc.batches.v6` (the Extole mirror)."""

from __future__ import annotations

from grpc import aio

from batchgrpc.batches.v6 import audience_list_pb2_grpc, batch_job_pb2_grpc, file_asset_pb2_grpc, report_pb2_grpc
from batchgrpc.pending import pending

_JOBS = "batch jobs (reading data sources row by row and dispatching events) are not built yet"
_FILES = "file assets are not built yet"
_REPORTS = "reports are not built yet"
_LISTS = "audience lists are not built yet"


class BatchJobService(batch_job_pb2_grpc.BatchJobServiceServicer):
    CreateBatchJob = pending("BatchJobService.CreateBatchJob", _JOBS)
    GetBatchJob = pending("BatchJobService.GetBatchJob", _JOBS)
    ListBatchJobs = pending("BatchJobService.ListBatchJobs", _JOBS)
    UpdateBatchJob = pending("BatchJobService.UpdateBatchJob", _JOBS)
    CancelBatchJob = pending("BatchJobService.CancelBatchJob", _JOBS)
    ExpireBatchJob = pending("BatchJobService.ExpireBatchJob", _JOBS)
    DeleteBatchJob = pending("BatchJobService.DeleteBatchJob", _JOBS)
    WatchBatchJob = pending("BatchJobService.WatchBatchJob", _JOBS)
    ListBatchJobRowErrors = pending("BatchJobService.ListBatchJobRowErrors", _JOBS)


class FileAssetService(file_asset_pb2_grpc.FileAssetServiceServicer):
    UploadFileAsset = pending("FileAssetService.UploadFileAsset", _FILES)
    GetFileAsset = pending("FileAssetService.GetFileAsset", _FILES)
    ListFileAssets = pending("FileAssetService.ListFileAssets", _FILES)
    DeleteFileAsset = pending("FileAssetService.DeleteFileAsset", _FILES)


class ReportService(report_pb2_grpc.ReportServiceServicer):
    CreateReport = pending("ReportService.CreateReport", _REPORTS)
    UploadReportResult = pending("ReportService.UploadReportResult", _REPORTS)
    GetReport = pending("ReportService.GetReport", _REPORTS)
    ListReports = pending("ReportService.ListReports", _REPORTS)


class AudienceListService(audience_list_pb2_grpc.AudienceListServiceServicer):
    CreateAudienceList = pending("AudienceListService.CreateAudienceList", _LISTS)
    UploadAudienceListMembers = pending("AudienceListService.UploadAudienceListMembers", _LISTS)
    GetAudienceList = pending("AudienceListService.GetAudienceList", _LISTS)
    ListAudienceLists = pending("AudienceListService.ListAudienceLists", _LISTS)


def register(server: aio.Server) -> None:
    batch_job_pb2_grpc.add_BatchJobServiceServicer_to_server(BatchJobService(), server)
    file_asset_pb2_grpc.add_FileAssetServiceServicer_to_server(FileAssetService(), server)
    report_pb2_grpc.add_ReportServiceServicer_to_server(ReportService(), server)
    audience_list_pb2_grpc.add_AudienceListServiceServicer_to_server(AudienceListService(), server)
