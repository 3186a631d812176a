"""betenet.evaluation"""
