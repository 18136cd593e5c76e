"""kubeling.cli"""
