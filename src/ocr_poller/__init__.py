"""Collects Aspose.OCR Cloud v5 results: one status check per invocation, results to S3 and DynamoDB."""
