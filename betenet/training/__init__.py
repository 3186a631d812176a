"""betenet.training"""
