"""Adapters: one module per outside system; only these import boto3 or urllib3."""
