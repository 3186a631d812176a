"""betenet.models"""
